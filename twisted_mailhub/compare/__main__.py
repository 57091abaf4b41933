import sys

from twisted_mailhub.compare import main

sys.exit(main())

"""
Authentication: twisted.cred checkers and realm, password schemes, SASL
mechanisms and their driver, failure throttling, and TLS helpers.

The modules, by what they hold:

  - L{realm}: L{MailhubRealm}, authenticated user -> L{IMailStore}.
  - L{checkers}: L{InMemoryChecker}, L{HashedPasswordChecker},
    L{ChainedChecker}; L{passwd}: L{PasswdFileChecker}.
  - L{schemes}: L{hash_password}, L{verify_password} (``{SCHEME}hash``);
    L{shacrypt}: ``$5$``/``$6$`` crypt.
  - L{verifier}: L{PasswordVerifier}, which every checker hands its
    password checks to, a bounded number at a time.
  - L{sasl}: L{run_sasl}, L{sasl_mechanisms}; L{steps}: what mechanisms
    return; L{plain}: PLAIN and LOGIN; L{scram}: SCRAM-SHA-256.
  - L{credentials}: L{ScramVerified}, L{ScramCredentials}.
  - L{throttle}: L{FailureThrottle}, L{log_auth_failure}.
  - L{tls}: L{make_tls_options}, L{generate_self_signed}.
"""

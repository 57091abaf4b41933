"""
Parsing messages once: MIME structure with byte offsets, ENVELOPE and
BODYSTRUCTURE values, section resolution and text for SEARCH.
"""

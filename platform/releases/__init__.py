"""Release pipeline: desensitize, declassify, shift, lightweight, fingerprint, report."""

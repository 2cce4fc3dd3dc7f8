"""Telephony: the ``Call`` interface flows are written against, its ARI and FastAGI
implementations on a real Asterisk, an in-process fake, and the Asterisk configuration."""

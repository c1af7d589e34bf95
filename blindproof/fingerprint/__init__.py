"""blindproof.fingerprint"""

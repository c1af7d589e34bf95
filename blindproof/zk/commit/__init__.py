"""Commitments: BLAKE3, Merkle trees, Reed–Solomon encoding, the hiding Ligero polynomial
commitment.
"""

"""Whole-model proofs: the program, the prover and the verifier (and the statement they share),
model commitments, commitment keys and configuration, proof files, well-formed weights,
key rotation, soundness.
"""

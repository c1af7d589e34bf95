"""The interactive proofs the layer protocols are built from: Fiat–Shamir transcript, multilinear
extensions, sumcheck, logUp-GKR lookups, claims, zero-knowledge masks and randomizers.
"""

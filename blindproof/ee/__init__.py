"""Equivariant Encryption: client keys, server-side weight transforms, client encode/decode.

    key = generate_key()
    enc = encrypt_model(model, key, "rotate")          # enc.model goes to the server
    codec = ClientCodec(model, key, "rotate")          # stays on the client
    logits = codec.client_output(enc.model.run_blocks(codec.client_input(tokens)))
"""

from blindproof.ee.codec import ClientCodec, DeploymentMismatchError, blind_generate, local_server_step
from blindproof.ee.keys import KEY_VERSION, EEKey, KeyFileError, generate_key, load_key, save_key
from blindproof.ee.plan import TIERS, Split, Tier
from blindproof.ee.transform import EncryptedModel, encrypt_model

__all__ = ["KEY_VERSION", "TIERS", "ClientCodec", "DeploymentMismatchError", "EEKey", "EncryptedModel",
           "KeyFileError", "Split", "Tier", "blind_generate", "encrypt_model", "generate_key", "load_key",
           "local_server_step", "save_key"]

"""blindproof.fingerprint: harmless-perturbation fingerprints (docs/fingerprint.md).

- ``subspace``: harmless directions at a model's input, with certificates from running the model;
- ``linalg``: float and exact integer null spaces;
- ``protocol``: secret references, probes, calibration on the serving stack, the identity check;
- ``stats``: binomial tails, test design and the sequential test;
- ``substitutes``: the substitutes a dishonest server might run (for tests and benchmarks);
- ``transformer``: probe points for deployed transformers (see docs/fingerprint.md);
- ``integer``: exact integer probes for integer programs (quant).
"""

from blindproof.fingerprint.linalg import integer_null_space, null_space
from blindproof.fingerprint.protocol import (Calibration, Fingerprint, Probes, Verdict, calibrate, check,
                                             make_fingerprint)
from blindproof.fingerprint.stats import Design, SequentialTest, design_test
from blindproof.fingerprint.subspace import Certificate, HarmlessSpace, certify, harmless_space

__all__ = ["Calibration", "Certificate", "Design", "Fingerprint", "HarmlessSpace", "Probes", "SequentialTest",
           "Verdict", "calibrate", "certify", "check", "design_test", "harmless_space", "integer_null_space",
           "make_fingerprint", "null_space"]

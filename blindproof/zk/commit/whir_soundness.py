"""Parameters and soundness calculator for the WHIR-style commitment in :mod:`blindproof.zk.commit.whir`.

Conventions follow :mod:`blindproof.zk.proof.soundness`: every figure is ``-log2`` of a union bound,
and two figures are kept apart.

* **provable bits** — unique-decoding (UD) regime. Oracle ``i`` is a Reed–Solomon codeword of a
  polynomial with ``2^{m_i}`` coefficients on a domain of ``N_i`` points (rate ``ρ_i = 2^{m_i}/N_i``);
  distances are taken up to ``δ_i = (1 − ρ_i)/2``, where the close codeword is unique. Folding one
  variable combines the two halves of a function on ``N/2`` points with a random extension element; by
  the UD proximity gap for lines (Ben-Sasson, Carmon, Ishai, Kopparty, Saraf 2020) a far pair stays
  far except with probability ``(N/2)/|F|``, so folding ``k`` variables costs
  ``Σ_{l=1..k} N_i/2^l / |F| < N_i/|F|``. Each shift query misses a far fold with probability at most
  ``1 − δ_i``. The sumcheck costs ``2/|F|`` per variable (degree 2), every random combination
  ``1/|F|`` (independent challenges, not powers), each out-of-domain sample ``2^{m_{i+1}}/|F|``, and the
  mask line ``P_f + ρ·M`` of the hiding construction (one line over the challenge field, whatever the
  number of ``M``'s base rows) one more proximity gap ``N_0/|F|`` plus ``1/|F|`` for its claim.
* **conjectured bits** — the same field terms, with each query missing with probability ``ρ_i``
  (proximity gaps with UD-size error up to the capacity bound ``1 − ρ``; the convention of
  ``soundness.py``). This is optimistic: the strongest up-to-capacity conjecture for Reed–Solomon codes
  was disproved in 2025, and a list-decoding analysis would multiply the field terms by the list size.

With the folding challenges in the degree-4 extension (``|F| ≈ 2^123.6``) the field terms alone are
about ``2.25·N_0/|F|``, i.e. at most ``123.6 − log2 N_0 − 1.2`` bits: with the hiding construction
``N_0 = 2^{m+1}·blowup``, and 100 provable bits stop at ``m = 20`` at blowup 2. ``ext_degree = 8`` draws
``ρ`` and the folding challenges from ``F_p[y]/(y^8 − 11)`` (``|F| ≈ 2^247.3``, containing the degree-4
field by ``x ↦ y^2``), which moves those terms past 220 bits; the combinations' degree-4 challenges
(123.6 bits each) remain. :meth:`WhirParams.for_security` uses degree 8 only
where degree 4 cannot reach the target. The derivation with worked numbers is in ``docs/whir.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from blindproof.zk.proof.soundness import BABYBEAR_P, EXT_DEGREE, PROOF_FLOOR_BITS

EXT_LOG2 = EXT_DEGREE * math.log2(BABYBEAR_P)  # ≈ 123.6
MAX_LOG_SIZE = 26
MAX_QUERIES = 1024
MAX_DOMAIN_LOG = 27  # BabyBear's two-adicity
PROFILES = ("provable", "conjectured")


def _check_int(v, name: str, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ValueError(f"{name} must be an int in [{lo}, {hi}], got {v!r}")
    return v


@dataclass(frozen=True)
class WhirParams:
    """Everything the prover and verifier of :mod:`whir` agree on. A verifier builds these itself
    (:meth:`for_security`), never from a proof.

    ``log_size``: variables ``m`` of the committed multilinear polynomial. ``folding``: variables bound
    per round (``k``). ``blowup``: ``N_0 / 2^n`` of the first code. ``shrink``: each round's domain is
    ``2^shrink`` times smaller than the previous one (``ρ_{i+1} = ρ_i · 2^{shrink − k}``; WHIR's paper
    uses 1). ``final_log``: the final polynomial (at most ``2^final_log`` coefficients) is sent in the
    clear. ``ood``: out-of-domain samples per oracle. ``queries``: shift queries per oracle."""

    log_size: int
    queries: tuple[int, ...]
    folding: int = 4
    blowup: int = 2
    shrink: int = 2
    final_log: int = 7
    ood: int = 1
    profile: str = "provable"
    security_bits: float = 100.0
    ext_degree: int = 4  # the field of ρ and the folding challenges: x^4 − 11, or y^8 − 11 ⊃ it

    def __post_init__(self) -> None:
        _check_int(self.log_size, "log_size", 0, MAX_LOG_SIZE)
        _check_int(self.folding, "folding", 3, 8)  # k ≥ 3: see _padded_log
        if self.ext_degree not in (4, 8) or (1 << self.folding) <= self.ext_degree:
            raise ValueError(f"ext_degree must be 4 or 8 and below 2^folding (hiding), got {self.ext_degree!r}")
        _check_int(self.shrink, "shrink", 1, self.folding)
        _check_int(self.final_log, "final_log", 0, 12)
        _check_int(self.ood, "ood", 0, 4)
        if self.blowup not in (2, 4, 8, 16):
            raise ValueError(f"blowup must be 2, 4, 8 or 16, got {self.blowup!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if not isinstance(self.queries, tuple) or len(self.queries) != len(self.folds):
            raise ValueError(f"need one query count per oracle ({len(self.folds)}), got {self.queries!r}")
        for t in self.queries:
            _check_int(t, "queries", 1, MAX_QUERIES)
        for i, (lm, ld, k) in enumerate(zip(self.oracle_vars, self.domain_logs, self.folds)):
            if not lm < ld <= MAX_DOMAIN_LOG or ld < k:
                raise ValueError(f"oracle {i}: 2^{lm} coefficients on 2^{ld} points does not fit (rate below 1, "
                                 f"domain at most 2^{MAX_DOMAIN_LOG}); lower shrink or raise blowup")
        if not (isinstance(self.security_bits, (int, float)) and 0 < self.security_bits <= 256):
            raise ValueError(f"security_bits must be in (0, 256], got {self.security_bits!r}")

    # --- the shape the parameters fix ------------------------------------------------------------

    @property
    def hiding_symbols(self) -> int:
        """Random coefficients ``t_h`` of ``s`` in ``P_f = f + Y·s``: every opened position of the first
        oracle (``queries[0]`` blocks of ``2^k``) and the ``ood`` extension samples (4 base
        coordinates each) see independent randomness."""
        return self.queries[0] * (1 << self.folding) + 4 * self.ood if self.queries else 0

    @property
    def masks(self) -> int:
        """Base-field rows ``P_g`` of the one mask ``M = Σ_g b_g·P_g`` (``b_g`` a basis of the challenge
        field over F_p): ``G = ext_degree``, so ``M`` is a uniform polynomial with challenge-field
        values and ``ρ·⟨M, w⟩`` covers the whole field for any nonzero weights, whatever subfield
        the weights lie in (see docs/whir.md)."""
        return self.ext_degree

    @property
    def padded_log(self) -> int:
        """``m' ≥ m``: small polynomials are padded with leading zero variables so that
        ``2^{m'} ≥ t_h`` (the hiding coefficients fit below ``2^{m'+1}``)."""
        return _padded_log(self.log_size, self.queries[0] if self.queries else 1, self.folding, self.ood,
                           self.ext_degree)

    @property
    def n_vars(self) -> int:
        """Variables of the committed polynomials ``P_f``, ``P_g``: ``m' + 1`` (the hiding variable Y)."""
        return self.padded_log + 1

    @property
    def folds(self) -> tuple[int, ...]:
        """Variables bound in each round (one round per oracle)."""
        return _folds(self.padded_log + 1, self.folding, self.final_log)

    @property
    def oracle_vars(self) -> tuple[int, ...]:
        """``m_i``: variables of oracle ``i``'s polynomial."""
        out, m = [], self.n_vars
        for k in self.folds:
            out.append(m)
            m -= k
        return tuple(out)

    @property
    def final_vars(self) -> int:
        return self.n_vars - sum(self.folds)

    @property
    def domain_logs(self) -> tuple[int, ...]:
        """``log2 N_i`` of each oracle's evaluation domain."""
        n0 = self.n_vars + int(math.log2(self.blowup))
        return tuple(n0 - self.shrink * i for i in range(len(self.folds)))

    def soundness(self, n_claims: int = 1) -> "WhirSoundness":
        """The provable and conjectured figures of one opening, term by term."""
        return analyze(self, n_claims)

    def encode(self) -> bytes:
        """Canonical bytes (absorbed by the transcript, so every challenge depends on the parameters)."""
        head = [self.log_size, self.folding, self.blowup, self.shrink, self.final_log, self.ood,
                PROFILES.index(self.profile), len(self.queries), self.ext_degree]
        body = b"".join(int(t).to_bytes(2, "little") for t in self.queries)
        return bytes(head) + body + int(round(self.security_bits * 10)).to_bytes(2, "little")

    @classmethod
    def for_security(cls, bits: float, log_size: int, profile: str = "provable", *, folding: int = 4,
                     blowup: int = 2, shrink: int = 2, final_log: int = 7, ood: int | None = None,
                     ext_degree: int | None = None) -> "WhirParams":
        """The fewest queries per oracle whose union bound reaches ``bits`` in ``profile`` (provable:
        unique decoding; conjectured: capacity). ``ext_degree`` None: the degree-4 extension where it
        reaches the target, else the degree-8 one (cheaper arithmetic first). Raises ValueError when
        the field terms alone leave no room (the provable profile also refuses targets below
        ``PROOF_FLOOR_BITS``)."""
        if ext_degree is None:
            try:
                return cls.for_security(bits, log_size, profile, folding=folding, blowup=blowup, shrink=shrink,
                                        final_log=final_log, ood=ood, ext_degree=4)
            except ValueError as exc:
                if "larger extension field" not in str(exc):
                    raise
                return cls.for_security(bits, log_size, profile, folding=folding, blowup=blowup, shrink=shrink,
                                        final_log=final_log, ood=ood, ext_degree=8)
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        if not (isinstance(bits, (int, float)) and 0 < bits <= 256):
            raise ValueError(f"bits must be in (0, 256], got {bits!r}")
        if profile == "provable" and bits < PROOF_FLOOR_BITS:
            raise ValueError(f"the provable profile needs at least {PROOF_FLOOR_BITS} bits, got {bits}")
        _check_int(log_size, "log_size", 0, MAX_LOG_SIZE)
        if ood is None:  # unique decoding needs none (a single close codeword); the conjecture's lists do
            ood = 0 if profile == "provable" else 2
        t0, params = 1, None
        for _ in range(8):  # t_0 fixes the hiding symbols, which can pad m, which moves the field terms
            folds = _folds(_padded_log(log_size, t0, folding, ood, ext_degree) + 1, folding, final_log)
            trial = cls(log_size, (t0,) + (1,) * (len(folds) - 1), folding, blowup, shrink, final_log, ood,
                        profile, float(bits), ext_degree)
            fe = analyze(trial, 1).field_error(profile)
            budget = 2.0 ** (-bits) - fe
            if budget <= 0:
                raise ValueError(
                    f"no query count reaches {bits} {profile} bits at 2^{log_size}: the field terms alone "
                    f"give {_bits(fe):.1f} bits (|F_ext| ≈ 2^{EXT_LOG2 * trial.ext_degree / 4:.1f}, N_0 = "
                    f"2^{trial.domain_logs[0]}); a larger extension field is needed for this size")
            per = budget / len(folds)  # each oracle's query term gets an equal share
            qs = []
            for i, lm in enumerate(trial.oracle_vars):
                rho = 2.0 ** (lm - trial.domain_logs[i])
                keep = 1 - (1 - rho) / 2 if profile == "provable" else rho  # a query misses w.p. ≤ keep
                t = max(1, math.ceil(math.log2(per) / math.log2(keep)))
                if t > MAX_QUERIES:
                    raise ValueError(f"oracle {i} would need {t} queries (over {MAX_QUERIES})")
                qs.append(t)
            if qs[0] == t0:
                params = dataclass_replace_queries(trial, tuple(qs))
                break
            t0 = qs[0]
        if params is None:
            raise ValueError(f"the query counts for 2^{log_size} did not settle")
        got = getattr(analyze(params, 1), f"{profile}_bits")
        if got < bits:
            raise ValueError(f"could not reach {bits} {profile} bits at 2^{log_size} (got {got:.1f})")
        return params


def dataclass_replace_queries(p: WhirParams, queries: tuple[int, ...]) -> WhirParams:
    """``p`` with other query counts (same everything else)."""
    return WhirParams(p.log_size, queries, p.folding, p.blowup, p.shrink, p.final_log, p.ood, p.profile,
                      p.security_bits, p.ext_degree)


def _padded_log(m: int, t0: int, k: int, ood: int, d: int = 4) -> int:
    """The smallest ``m' ≥ m`` such that (1) the ``t_h`` hiding coefficients fit below ``2^{m'}`` and
    (2) the random mask ``M`` (``d`` base rows of ``2^{m'+1}`` coordinates) covers, independently,
    everything the opening reveals about it before the first fold (``μ`` and its OOD answers, ``d``
    base coordinates each; ``t_0·2^k`` opened entries per row; ``k`` sumcheck rounds of two
    challenge-field elements) plus the folded ``F_1`` (``2^{m'+1-k}`` coefficients of ``d`` base
    coordinates each), which later rounds may reveal in full."""
    th = t0 * (1 << k) + 4 * ood
    g = d  # base rows of the mask, 2^{m'+1} coordinates each
    need = g * (t0 << k) + d * (ood + 1) + 2 * d * k
    mp = max(m, (th - 1).bit_length())
    while g * (1 << (mp + 1)) - d * (1 << (mp + 1 - k)) < need:
        mp += 1
    return mp


def _folds(n: int, k: int, final_log: int) -> tuple[int, ...]:
    out, m = [], n
    while m > final_log or not out:
        ki = min(k, m)
        out.append(ki)
        m -= ki
    return tuple(out)


def _bits(err: float) -> float:
    return math.inf if err <= 0 else -math.log2(err)


@dataclass(frozen=True)
class WhirSoundness:
    """One opening's soundness. ``terms`` / ``conjectured_terms`` map each named error term to
    ``-log2`` of it, under the unique-decoding analysis and under the conjecture respectively."""

    provable_bits: float
    conjectured_bits: float
    provable_field_error: float  # the sum of the provable figure's field (non-query) terms
    conjectured_field_error: float
    terms: dict = field(default_factory=dict)
    conjectured_terms: dict = field(default_factory=dict)

    def field_error(self, profile: str) -> float:
        return self.provable_field_error if profile == "provable" else self.conjectured_field_error

    def summary(self) -> str:
        worst = sorted(self.terms.items(), key=lambda kv: kv[1])[:3]
        return (f"provable {self.provable_bits:.1f} bits, conjectured {self.conjectured_bits:.1f} bits; "
                f"weakest provable terms: " + ", ".join(f"{k} {v:.1f}" for k, v in worst))


def analyze(params: WhirParams, n_claims: int = 1) -> WhirSoundness:
    """Provable (unique decoding) and conjectured bits of one opening of ``n_claims`` claims under
    ``params``; see the module docstring and docs/whir.md for each term."""
    _check_int(n_claims, "n_claims", 1, 1 << 30)
    inv_f = 2.0 ** (-EXT_LOG2)  # γ and OOD points: the degree-4 extension
    inv_fc = 2.0 ** (-EXT_LOG2 * params.ext_degree / 4)  # α, ρ and the folding/sumcheck challenges
    prov: dict[str, float] = {}
    conj: dict[str, float] = {}
    err = {"p": 0.0, "c": 0.0}

    def add(name: str, ep: float, ec: float | None = None) -> None:
        ec = ep if ec is None else ec
        err["p"] += ep
        err["c"] += ec
        prov[name] = _bits(ep)
        conj[name] = _bits(ec)

    def ood_conj(m_vars: int, rho: float) -> float:
        # list size conjectured ≤ 1/ρ: two of the list agree on s random points w.p. (2^m/|F|)^s
        ell = 1.0 / rho
        return ell * ell / 2 * (2.0 ** m_vars * inv_f) ** params.ood

    n0 = 2.0 ** params.domain_logs[0]
    rho0 = 2.0 ** (params.n_vars - params.domain_logs[0])
    add("claims batching", inv_fc)
    if params.ood:  # unique decoding: one close codeword, nothing for an OOD sample to separate
        add("initial ood", 0.0, ood_conj(params.n_vars, rho0))
    add("mask line (proximity gap)", n0 * inv_fc, inv_fc / rho0)  # one line P_f + ρ·M over F_c
    add("mask claim", inv_fc)
    q_prov = q_conj = 0.0
    n_or = len(params.folds)
    for i, (k, lm, ld, t) in enumerate(zip(params.folds, params.oracle_vars, params.domain_logs, params.queries)):
        n_i = 2.0 ** ld
        rho = 2.0 ** (lm - ld)
        add(f"round {i} sumcheck", 2 * k * inv_fc)
        add(f"round {i} fold (proximity gap)", sum(n_i / 2 ** l for l in range(1, k + 1)) * inv_fc,
            k * inv_fc / rho)
        if i + 1 < n_or:
            rho_next = 2.0 ** (lm - k - params.domain_logs[i + 1])
            if params.ood:
                add(f"round {i} ood", 0.0, ood_conj(lm - k, rho_next))
            add(f"round {i} combination", inv_f)
        ep = (1 - (1 - rho) / 2) ** t
        ec = rho ** t
        prov[f"round {i} queries"] = _bits(ep)
        conj[f"round {i} queries"] = _bits(ec)
        q_prov += ep
        q_conj += ec
    if params.final_vars:
        add("final sumcheck", 2 * params.final_vars * inv_fc)
    prov_bits = _bits(err["p"] + q_prov)
    # a bound proved without the conjecture holds under it too: the conjectured figure is never lower
    conj_bits = max(prov_bits, _bits(err["c"] + q_conj))
    return WhirSoundness(provable_bits=prov_bits, conjectured_bits=conj_bits,
                         provable_field_error=err["p"], conjectured_field_error=err["c"], terms=prov,
                         conjectured_terms=conj)


def max_provable_log_size(bits: float = PROOF_FLOOR_BITS, **kw) -> int:
    """The largest ``log_size`` for which :meth:`WhirParams.for_security` reaches ``bits`` provable bits."""
    best = -1
    for m in range(0, MAX_LOG_SIZE + 1):
        try:
            WhirParams.for_security(bits, m, "provable", **kw)
            best = m
        except ValueError:
            break
    return best

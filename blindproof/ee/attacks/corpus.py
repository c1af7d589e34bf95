"""Text for the attacks: public statistics for the attacker, disjoint private traffic for the victim.

The project ships an English corpus with its default model (blindproof/models/assets). The attacker's
language model is fitted on one part; the victim's chat messages come from a disjoint part, so the
decipherment never sees the text it has to recover.
"""

from __future__ import annotations

import re

from blindproof.models.default import corpus_text

CHAT_PREFIX = b"<|user|>\n"
CHAT_SUFFIX = b"\n<|assistant|>\n"


def load_corpus_text() -> str:
    """The project's bundled English corpus (training part, then held-out part) as one string."""
    return corpus_text("train") + "\n" + corpus_text("heldout")


def split_corpus(text: str, victim_bytes: int) -> tuple[bytes, bytes]:
    """(attacker_text, victim_text): the last ``victim_bytes`` bytes (at a paragraph break) go to the victim."""
    data = text.encode("utf-8")
    if victim_bytes <= 0 or victim_bytes >= len(data) // 2:
        raise ValueError(f"victim_bytes must lie in (0, {len(data) // 2}) for a corpus of {len(data)} bytes")
    cut = data.rfind(b"\n", 0, len(data) - victim_bytes)
    cut = len(data) - victim_bytes if cut < 0 else cut
    return data[:cut], data[cut:].lstrip(b"\n")


def chat_messages(text: bytes, total_bytes: int, max_message: int = 240) -> list[bytes]:
    """Wrap consecutive sentences of ``text`` in the chat template, ``total_bytes`` bytes in all.

    Messages hold whole sentences up to ``max_message`` bytes of text; the last message's text is
    shortened so the traffic is exactly ``total_bytes`` long with every template intact.
    """
    overhead = len(CHAT_PREFIX) + len(CHAT_SUFFIX)
    if total_bytes <= overhead:
        raise ValueError(f"total_bytes must exceed one empty chat template ({overhead}), got {total_bytes}")
    sentences = [s for s in re.split(rb"(?<=[.!?])\s+", text.replace(b"\n", b" ")) if s.strip()]
    out: list[bytes] = []
    size, cur = 0, b""
    for s in sentences + [None]:
        if cur and (s is None or len(cur) + 1 + len(s) > max_message):
            room = total_bytes - size - overhead
            if 0 < room - len(cur) <= overhead:
                # the rest could not hold a template: shorten this message, leaving one byte of text next
                room = total_bytes - size - 2 * overhead - 1
                if room < 1 and s is not None:  # too short to shorten: grow it by the next sentence instead
                    cur = (cur + b" " + s)[:max_message]
                    continue
                if room < 1:
                    break
            out.append(CHAT_PREFIX + cur[:room] + CHAT_SUFFIX)
            size += len(out[-1])
            cur = b""
            if size >= total_bytes:
                return out
        if s is not None:
            cur = (cur + b" " + s) if cur else s[:max_message]
    raise ValueError(f"victim text too short for {total_bytes} bytes of traffic")

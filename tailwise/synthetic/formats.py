"""Text renderings of ids, timestamps and phone numbers (vectorised with pyarrow).

Raw tables carry text because real sources disagree; this module owns every
rendering: canonical ISO-8601 UTC, local ISO with offset, epoch seconds and
naive UTC timestamps, zero-padded ids and the phone number styles.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


def id_width(max_number: int, minimum: int) -> int:
    """Digits needed to zero-pad every id up to `max_number`."""
    return max(minimum, len(str(max(max_number, 0))))


def format_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """'u' + zero-padded number, e.g. u0000123."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and scalars."""
    return pc.binary_join_element_wise(*parts, "")


def take(labels: list[str], codes: np.ndarray) -> pa.Array:
    """Map integer codes to labels (codes < 0 become null)."""
    codes = np.asarray(codes)
    idx = pa.array(codes, mask=codes < 0, type=pa.int64())
    return pc.take(pa.array(labels, pa.string()), idx)


def iso_utc(ts: np.ndarray) -> pa.Array:
    """Canonical rendering: 2026-10-01T12:34:56Z."""
    stamps = pa.array(np.asarray(ts, np.int64), pa.int64()).cast(pa.timestamp("s", tz="UTC"))
    return pc.strftime(stamps, format=ISO_UTC)


def naive_utc(ts: np.ndarray) -> pa.Array:
    """Naive text that means UTC: 2026-10-01 12:34:56."""
    stamps = pa.array(np.asarray(ts, np.int64), pa.int64()).cast(pa.timestamp("s"))
    return pc.strftime(stamps, format="%Y-%m-%d %H:%M:%S")


def epoch_text(ts: np.ndarray) -> pa.Array:
    """Epoch seconds as text: 1790000000."""
    return pc.cast(pa.array(np.asarray(ts, np.int64), pa.int64()), pa.string())


def iso_local(ts: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Local wall clock with its offset, e.g. 2026-10-01T14:34:56+02:00 (same instant)."""
    local = pa.array(np.asarray(ts + offsets, np.int64), pa.int64()).cast(pa.timestamp("s"))
    clock = pc.strftime(local, format="%Y-%m-%dT%H:%M:%S")
    uniq, inverse = np.unique(offsets, return_inverse=True)
    suffix = take([_offset_text(int(o)) for o in uniq], inverse.reshape(-1))
    return join(clock, suffix)


def _offset_text(seconds: int) -> str:
    sign = "+" if seconds >= 0 else "-"
    minutes = abs(seconds) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def phone_styles(
    cc: pa.Array, trunk: pa.Array, prefix: pa.Array, number: pa.Array, style: np.ndarray
) -> pa.Array:
    """Render phone numbers; style 0 is canonical "+49 151 2345678", the others
    are the formats a duplicate account might carry."""
    tail = pc.utf8_slice_codeunits(number, 3)
    head = pc.utf8_slice_codeunits(number, 0, 3)
    styles = [
        join("+", cc, " ", prefix, " ", number),  # +49 151 2345678
        join("00", cc, "-", prefix, "-", number),  # 0049-151-2345678
        join("(", trunk, prefix, ") ", number),  # (0151) 2345678
        join("+", cc, prefix, number),  # +491512345678
        join(trunk, prefix, " ", head, " ", tail),  # 0151 234 5678
    ]
    out = styles[0]
    for k in range(1, len(styles)):
        out = pc.if_else(pa.array(style == k), styles[k], out)
    return out

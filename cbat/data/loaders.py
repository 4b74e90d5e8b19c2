"""Read the field's EPI formats into an ``EPIDataset`` with one-line errors naming file, record and field.

* a table (CSV / TSV / Parquet, gzip allowed): ``enhancer_seq, promoter_seq, label, cell_line`` (+ optional
  ``chrom, pair_id, enhancer_id, promoter_id``);
* FASTA triplets (SPEID / EPIVAN): enhancer FASTA, promoter FASTA and a labels file (one 0/1 per line), or a
  folder holding ``<cell>_enhancer.fa[sta][.gz]``, ``<cell>_promoter...`` and ``<cell>_label[s].txt``;
* coordinates (TargetFinder ``pairs.csv``: ``enhancer_chrom/start/end, promoter_chrom/start/end, label,
  cell_line``) plus a genome FASTA read with ``pyfaidx``, centred and padded/cropped to fixed lengths.
"""
from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from cbat.data.dataset import EPIDataset
from cbat.data.encoding import SequenceError, encode, encode_many, fit_length, N_CODE

SEQUENCE_COLUMNS = ("enhancer_seq", "promoter_seq", "label", "cell_line")
COORDINATE_COLUMNS = ("enhancer_chrom", "enhancer_start", "enhancer_end", "promoter_chrom", "promoter_start",
                      "promoter_end", "label", "cell_line")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz")
DEFAULT_LENGTHS = (3000, 2000)


class DataError(ValueError):
    """Bad input data; the message names the file, the record or line, and the field."""


def load(path, *, promoter=None, labels=None, genome=None, cell_line: str | None = None,
         enhancer_len: int | None = None, promoter_len: int | None = None) -> EPIDataset:
    """Load EPI pairs from any supported format.

    Parameters
    ----------
    path : path
        A table of sequences or coordinates, an enhancer FASTA (with ``promoter`` and ``labels``), or a
        folder of FASTA triplets.
    promoter, labels : path, optional
        The promoter FASTA and labels file of a FASTA triplet.
    genome : path, optional
        Genome FASTA for a coordinates table.
    cell_line : str, optional
        Cell line for FASTA triplets given as files (a folder takes it from the file prefix).
    enhancer_len, promoter_len : int, optional
        Fixed lengths (centred crop/pad with N). Sequences default to the longest one; coordinates to
        3000/2000 bp.
    """
    path = Path(path)
    if path.is_dir():
        return _load_fasta_folder(path, enhancer_len, promoter_len)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.name.lower().endswith(FASTA_SUFFIXES):
        if promoter is None or labels is None:
            raise DataError(f"{path}: a FASTA enhancer file needs promoter=<FASTA> and labels=<file>")
        return load_fasta_triplet(path, promoter, labels, cell_line or "unknown", enhancer_len, promoter_len)
    table = read_table(path)
    if "enhancer_chrom" in table.columns and "enhancer_seq" not in table.columns:
        if genome is None:
            raise DataError(f"{path}: a coordinates table needs genome=<FASTA>")
        return load_coordinates(path, genome, enhancer_len or DEFAULT_LENGTHS[0],
                                promoter_len or DEFAULT_LENGTHS[1], table)
    return _from_sequence_table(path, table, enhancer_len, promoter_len)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV / TSV / Parquet file (optionally gzipped) as a DataFrame of strings and numbers."""
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            table = pd.read_parquet(path)
        else:
            sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header line and rows") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt gzip file ({err})") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as a table ({str(err).splitlines()[0]})") from None
    if table.empty:
        raise DataError(f"{path}: the table has no rows")
    return table


def _line(path: Path, row: int) -> str:
    """Human position of a data row: file line for text tables (header is line 1), row for Parquet."""
    return f"row {row + 1}" if path.name.lower().endswith((".parquet", ".pq")) else f"line {row + 2}"


def _require(path: Path, table: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {list(columns)}, found {list(table.columns)}")


def _labels(path: Path, values, where) -> np.ndarray:
    text = pd.Series(values).astype(str).str.strip().str.lower()
    mapped = text.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0})
    bad = np.flatnonzero(mapped.isna().to_numpy())
    if bad.size:
        raise DataError(f"{path}: {where(bad[0])}, field 'label': {values[bad[0]]!r} is not 0 or 1")
    return mapped.to_numpy(dtype=np.int64)


def _sequence_id(seq: str) -> str:
    return "seq:" + hashlib.md5(seq.upper().encode()).hexdigest()[:12]


def _check_duplicates(path: Path, meta: pd.DataFrame, labels: np.ndarray, where) -> np.ndarray:
    """Keep the first of duplicate pair ids; conflicting labels are an error. Returns rows to keep."""
    frame = pd.DataFrame({"pair_id": meta["pair_id"].to_numpy(), "label": labels})
    conflicting = frame.groupby("pair_id")["label"].nunique()
    conflicting = conflicting[conflicting > 1]
    if len(conflicting):
        pid = conflicting.index[0]
        rows = np.flatnonzero(frame["pair_id"].to_numpy() == pid)
        raise DataError(f"{path}: pair_id {pid!r} appears at {where(rows[0])} and {where(rows[1])} with "
                        "conflicting labels; expected one label per pair")
    return np.flatnonzero(~frame["pair_id"].duplicated().to_numpy())


def _meta(table: pd.DataFrame, enhancer_seqs, promoter_seqs) -> pd.DataFrame:
    n = len(table)
    get = lambda col, default: table[col].astype(str).to_numpy() if col in table.columns else default  # noqa: E731
    meta = pd.DataFrame({
        "pair_id": get("pair_id", np.array([f"pair{i:06d}" for i in range(n)])),
        "cell_line": get("cell_line", np.full(n, "unknown")),
        "chrom": get("chrom", np.full(n, "unknown")),
        "enhancer_id": get("enhancer_id", np.array([_sequence_id(s) for s in enhancer_seqs])),
        "promoter_id": get("promoter_id", np.array([_sequence_id(s) for s in promoter_seqs])),
    })
    # Any further columns (loci, mechanism ...) ride along unchanged.
    extra = [c for c in table.columns if c not in meta.columns and c not in ("enhancer_seq", "promoter_seq", "label")]
    return pd.concat([meta, table[extra].reset_index(drop=True)], axis=1)


def _assemble(path, enhancer, promoter, labels, meta, where) -> EPIDataset:
    keep = _check_duplicates(path, meta, labels, where)
    return EPIDataset(enhancer[keep], promoter[keep], labels[keep], meta.iloc[keep].reset_index(drop=True))


def _from_sequence_table(path: Path, table: pd.DataFrame, enhancer_len, promoter_len) -> EPIDataset:
    _require(path, table, SEQUENCE_COLUMNS)
    where = lambda row: _line(path, row)  # noqa: E731
    labels = _labels(path, table["label"].to_numpy(), where)
    encoded = []
    for field, length in (("enhancer_seq", enhancer_len), ("promoter_seq", promoter_len)):
        seqs = table[field].fillna("").astype(str).to_numpy()
        names = [where(i) for i in range(len(seqs))]
        try:
            encoded.append(encode_many(seqs, length, where=str(path), names=[f"{n}, field '{field}'" for n in names]))
        except SequenceError as err:
            raise DataError(str(err)) from None
    meta = _meta(table, table["enhancer_seq"].astype(str), table["promoter_seq"].astype(str))
    return _assemble(path, encoded[0], encoded[1], labels, meta, where)


# --- FASTA triplets --------------------------------------------------------------------------------------
def _open_text(path: Path) -> str:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rt") as handle:
                return handle.read()
        return path.read_text()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt gzip file ({err})") from None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file") from None


def read_fasta(path) -> list[tuple[str, str]]:
    """``(name, sequence)`` records of a FASTA file (gzip allowed); names are the first word of the header."""
    path = Path(path)
    text = _open_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty; expected FASTA records")
    records, name, chunks = [], None, []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line.startswith(">"):
            if name is not None:
                records.append((name, "".join(chunks)))
            name, chunks = (line[1:].split() or [f"record{len(records) + 1}"])[0], []
        elif line:
            if name is None:
                raise DataError(f"{path}: line {number}: sequence before the first '>' header; expected FASTA")
            chunks.append(line)
    records.append((name, "".join(chunks)))
    return records


def _read_labels(path: Path) -> np.ndarray:
    text = _open_text(path)
    values = [v.strip() for v in text.splitlines() if v.strip()]
    if not values:
        raise DataError(f"{path}: the file is empty; expected one label (0 or 1) per line")
    return _labels(path, np.array(values), lambda row: f"label {row + 1}")


_LOCUS = re.compile(r"^(chr[\w]+)[:_]")


def load_fasta_triplet(enhancer, promoter, labels, cell_line: str = "unknown", enhancer_len=None,
                       promoter_len=None) -> EPIDataset:
    """Pairs from an enhancer FASTA, a promoter FASTA (record i pairs with record i) and a labels file.

    A header that starts with a locus (``chr3:1000-4000``) gives the pair's chromosome.
    """
    enhancer, promoter, labels = Path(enhancer), Path(promoter), Path(labels)
    enh, prom, y = read_fasta(enhancer), read_fasta(promoter), _read_labels(labels)
    if not len(enh) == len(prom) == len(y):
        raise DataError(f"{labels}: {len(y)} labels but {enhancer.name} has {len(enh)} records and "
                        f"{promoter.name} has {len(prom)}; expected equal counts")
    encoded = []
    for path, records, length in ((enhancer, enh, enhancer_len), (promoter, prom, promoter_len)):
        try:
            encoded.append(encode_many([s for _, s in records], length, where=str(path),
                                       names=[f"record {i + 1} ({n})" for i, (n, _) in enumerate(records)]))
        except SequenceError as err:
            raise DataError(str(err)) from None
    chrom = [m.group(1) if (m := _LOCUS.match(name)) else "unknown" for name, _ in enh]
    meta = pd.DataFrame({"pair_id": [f"{cell_line}|{e}|{p}" for (e, _), (p, _) in zip(enh, prom)],
                         "cell_line": cell_line, "chrom": chrom,
                         "enhancer_id": [n for n, _ in enh], "promoter_id": [n for n, _ in prom]})
    return _assemble(labels, encoded[0], encoded[1], y, meta, lambda row: f"record {row + 1}")


def _load_fasta_folder(folder: Path, enhancer_len, promoter_len) -> EPIDataset:
    parts = []
    for enhancer in sorted(folder.iterdir()):
        match = re.match(r"(.+)_enhancers?(\.fa|\.fasta|\.fna)(\.gz)?$", enhancer.name, re.IGNORECASE)
        if not match:
            continue
        cell = match.group(1)
        promoter = next((p for p in folder.glob(f"{cell}_promoter*") if p.name.lower().endswith(FASTA_SUFFIXES)),
                        None)
        labels = next(iter(sorted(folder.glob(f"{cell}_label*"))), None)
        if promoter is None or labels is None:
            raise DataError(f"{folder}: {enhancer.name} has no matching {cell}_promoter.fa and {cell}_label.txt")
        parts.append(load_fasta_triplet(enhancer, promoter, labels, cell, enhancer_len, promoter_len))
    if not parts:
        raise DataError(f"{folder}: no FASTA triplets found; expected <cell>_enhancer.fa, <cell>_promoter.fa and "
                        "<cell>_label.txt")
    width_e = enhancer_len or max(p.enhancer_len for p in parts)
    width_p = promoter_len or max(p.promoter_len for p in parts)
    refit = lambda m, w: np.stack([fit_length(row, w) for row in m])  # noqa: E731
    return EPIDataset(np.concatenate([refit(p.enhancer, width_e) for p in parts]),
                      np.concatenate([refit(p.promoter, width_p) for p in parts]),
                      np.concatenate([p.labels for p in parts]), pd.concat([p.meta for p in parts]))


# --- coordinates + genome --------------------------------------------------------------------------------
def load_coordinates(path, genome, enhancer_len: int = DEFAULT_LENGTHS[0], promoter_len: int = DEFAULT_LENGTHS[1],
                     table: pd.DataFrame | None = None) -> EPIDataset:
    """Pairs from a TargetFinder-style coordinates table and a genome FASTA (``pyfaidx``).

    Each region is centred and cut to the fixed length; parts beyond a chromosome end are padded with N.
    Coordinates are 0-based half-open like BED.
    """
    import pyfaidx

    path, genome = Path(path), Path(genome)
    table = read_table(path) if table is None else table
    _require(path, table, COORDINATE_COLUMNS)
    if not genome.is_file():
        raise DataError(f"{genome}: genome FASTA not found")
    try:
        fasta = pyfaidx.Fasta(str(genome), sequence_always_upper=True, rebuild=False)
    except (pyfaidx.FastaIndexingError, OSError, ValueError) as err:
        raise DataError(f"{genome}: cannot index the genome FASTA ({err})") from None
    where = lambda row: _line(path, row)  # noqa: E731
    labels = _labels(path, table["label"].to_numpy(), where)
    sides = {}
    for side, length in (("enhancer", enhancer_len), ("promoter", promoter_len)):
        chrom = table[f"{side}_chrom"].astype(str).to_numpy()
        start = _integers(path, table, f"{side}_start", where)
        end = _integers(path, table, f"{side}_end", where)
        codes = np.empty((len(table), length), dtype=np.uint8)
        for row in range(len(table)):
            codes[row] = _fetch(fasta, genome, path, where(row), side, chrom[row], start[row], end[row], length)
        sides[side] = (codes, [f"{c}:{s}-{e}" for c, s, e in zip(chrom, start, end)])
    meta = pd.DataFrame({"pair_id": table["pair_id"].astype(str) if "pair_id" in table.columns
                         else [f"{cl}|{e}|{p}" for cl, e, p in zip(table["cell_line"], sides["enhancer"][1],
                                                                     sides["promoter"][1])],
                         "cell_line": table["cell_line"].astype(str).to_numpy(),
                         "chrom": table["enhancer_chrom"].astype(str).to_numpy(),
                         "enhancer_id": sides["enhancer"][1], "promoter_id": sides["promoter"][1]})
    return _assemble(path, sides["enhancer"][0], sides["promoter"][0], labels, meta, where)


def _integers(path, table, column, where) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | (values.to_numpy() % 1 != 0))
    if bad.size:
        raise DataError(f"{path}: {where(bad[0])}, field {column!r}: {table[column].iloc[bad[0]]!r} is not an integer")
    return values.to_numpy().astype(np.int64)


def _fetch(fasta, genome, path, where, side, chrom, start, end, length) -> np.ndarray:
    if chrom not in fasta:
        raise DataError(f"{path}: {where}, field '{side}_chrom': {chrom!r} is not in {genome.name} "
                        f"(it has {', '.join(list(fasta.keys())[:5])}...)")
    size = len(fasta[chrom])
    if start < 0 or start >= end:
        raise DataError(f"{path}: {where}, fields '{side}_start'/'{side}_end': {start} >= {end} or negative; "
                        "expected 0 <= start < end")
    if end > size:
        raise DataError(f"{path}: {where}, field '{side}_end': {end} is beyond the end of {chrom} ({size} bp)")
    centre = (start + end) // 2
    lo, hi = centre - length // 2, centre - length // 2 + length
    seq = fasta[chrom][max(lo, 0):min(hi, size)].seq
    try:
        codes = encode(seq, f"{genome}: {chrom}:{max(lo, 0)}-{min(hi, size)}")
    except SequenceError as err:
        raise DataError(str(err)) from None
    out = np.full(length, N_CODE, dtype=np.uint8)
    out[max(lo, 0) - lo:max(lo, 0) - lo + codes.size] = codes
    return out

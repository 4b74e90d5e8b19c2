"""Read the field's published EPI files, as they are, into an ``EPIDataset``.

Formats (``FORMATS``; each is recognised from the file itself, and anything else gets one line listing them
and the columns seen):

* ``sequences``: a table (CSV / TSV / Parquet, gzip allowed) with ``enhancer_seq, promoter_seq, label,
  cell_line`` (+ optional ``chrom, pair_id, enhancer_id, promoter_id``);
* ``coordinates``: TargetFinder's ``pairs.csv`` and the per-cell ``training.csv(.gz)`` tables, which begin
  with the same columns. Header (shwhalen/targetfinder ``generate_pairs.py``: pandas sorts the concatenated
  columns, then appends the window names and counts; the same 17 names in this order are the non-predictor
  columns of ``training.csv`` in maruyama-lab-design/CBOEP ``EPI_predictor/TargetFinder/cross_validation.py``)::

      bin,enhancer_chrom,enhancer_distance_to_promoter,enhancer_end,enhancer_name,enhancer_start,label,
      promoter_chrom,promoter_end,promoter_name,promoter_start,window_end,window_start,window_chrom,
      window_name,interactions_in_window,active_promoters_in_window

  Any table with ``enhancer_chrom/start/end, promoter_chrom/start/end, label`` loads the same way (e.g.
  CBOEP's ``label,enhancer_distance_to_promoter,enhancer_chrom,...,promoter_name``). The cell line comes
  from ``cell_line=``, a ``cell_line`` column, or the name prefix (``HUVEC|chr1:3420459-3421842``);
* ``transepi``: TransEPI's benchmark tables (chenkenbio/TransEPI ``data/BENGI/*.tsv.gz``,
  ``data/HiC-loops/*_loop_dataset.tsv.gz``): tab-separated, no header, 10 columns read by
  ``src/epi_dataset.py`` as ``label, dist, chrom, enh_start, enh_end, enh_name, _, prom_start, prom_end,
  prom_name``; the cell line is the second ``|`` field of the names (``chr12:678895-680420|NHEK|EH37E...``);
* ``bengi``: BENGI benchmark pair files (weng-lab/BENGI ``Benchmark/*/<cell>.<assay>-Benchmark.v<k>.txt``):
  tab-separated, no header: cCRE accession, gene id, label, CV group (``EH37E0776604  ENSG00000185305.6  1
  cv-9``). They carry no coordinates, so they need BENGI's annotation BEDs (``Benchmark/Annotations``):
  ``ccres=hg19-cCREs.bed.gz`` (chrom, start, end, rDHS, cCRE accession, group) and
  ``tss=GENCODEv19-TSSs.bed.gz`` (chrom, start, end, transcript, score, strand, gene). The promoter is the
  gene's TSS nearest the enhancer, as BENGI's own distance method (``Scripts/Unsupervised-Methods/
  rank.distance.py``); the cell line is the file name's prefix;
* ``fasta``: FASTA triplets (SPEID / EPIVAN): enhancer FASTA, promoter FASTA and a labels file (one 0/1 per
  line), or a folder holding ``<cell>_enhancer[<tag>].fa[sta][.gz]``, ``<cell>_promoter[<tag>]...`` and
  ``<cell>_label[s][<tag>].txt`` (``_`` or ``.`` after the cell; a tag such as ``_test`` or ``_test_rep1`` tells
  several triplets of one cell line apart); a FASTA file of the folder that no triplet takes is an error.

Coordinates are read from a genome FASTA with ``pyfaidx`` (contig names with or without ``chr``), each region
centred and cut to a fixed window (default 3000 / 2000 bp, the log's), padded with N where the window runs
off a contig. Several files (a list, or a folder of tables) load into one dataset, so a cell line can be
held out. Columns a format carries beyond the ones read (distances, names, windows, CV groups, features)
stay in ``meta``. ``meta["chrom"]`` has one spelling per chromosome (``canonical_chrom``), and a pair id counts
once per cell line (``_check_duplicates``).
"""
from __future__ import annotations

import gzip
import hashlib
import re
import warnings
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from cbat.data.dataset import TRUTH_COLUMNS, EPIDataset
from cbat.data.encoding import SequenceError, encode, encode_many, fit_length, N_CODE

SEQUENCE_COLUMNS = ("enhancer_seq", "promoter_seq", "label", "cell_line")
COORDINATE_COLUMNS = ("enhancer_chrom", "enhancer_start", "enhancer_end", "promoter_chrom", "promoter_start",
                      "promoter_end", "label")
TARGETFINDER_COLUMNS = ("bin", "enhancer_chrom", "enhancer_distance_to_promoter", "enhancer_end", "enhancer_name",
                        "enhancer_start", "label", "promoter_chrom", "promoter_end", "promoter_name",
                        "promoter_start", "window_end", "window_start", "window_chrom", "window_name",
                        "interactions_in_window", "active_promoters_in_window")
# TransEPI's ten fields under the names CBOEP gives the same columns, so both read as coordinates.
TRANSEPI_COLUMNS = ("label", "enhancer_distance_to_promoter", "enhancer_chrom", "enhancer_start", "enhancer_end",
                    "enhancer_name", "promoter_chrom", "promoter_start", "promoter_end", "promoter_name")
BENGI_COLUMNS = ("ccre", "gene", "label", "cv_group")
FORMATS = {
    "sequences": "table with enhancer_seq, promoter_seq, label, cell_line",
    "coordinates": "TargetFinder pairs.csv / training.csv or any table with enhancer_chrom/start/end, "
                   "promoter_chrom/start/end, label (+ genome=)",
    "transepi": "TransEPI benchmark TSV, no header: label, distance, enhancer chrom/start/end/name, promoter "
                "chrom/start/end/name (+ genome=)",
    "bengi": "BENGI pair file, no header: cCRE accession, gene id, label, CV group (+ genome=, ccres=, tss=)",
    "fasta": "SPEID/EPIVAN FASTA triplet: enhancer FASTA, promoter FASTA, labels file, or a folder of them",
}
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz")
TABLE_SUFFIXES = tuple(s + z for s in (".csv", ".tsv", ".txt") for z in ("", ".gz")) + (".parquet", ".pq")
DEFAULT_LENGTHS = (3000, 2000)
PATH_ARGUMENTS = ("path", "promoter", "labels", "genome", "ccres", "tss")  # arguments of ``load`` that name files


def absolute_paths(spec: dict) -> dict:
    """A data spec (``load``'s arguments) with its file paths made absolute, read from the working directory, so
    workers and notebooks that run in another folder (the report runs each notebook inside its output folder)
    read the same files."""
    def resolve(value):
        return [resolve(v) for v in value] if isinstance(value, list) else str(Path(value).expanduser().resolve())

    return {k: resolve(v) if k in PATH_ARGUMENTS and isinstance(v, (str, Path, list)) else v
            for k, v in spec.items()}


class DataError(ValueError):
    """Bad input data; the message names the file, the record or line, and the field."""


def load(path, *, promoter=None, labels=None, genome=None, cell_line: str | None = None,
         enhancer_len: int | None = None, promoter_len: int | None = None, ccres=None, tss=None) -> EPIDataset:
    """Load EPI pairs from one file, a list of files or a folder, in any format of ``FORMATS``.

    Parameters
    ----------
    path : path or list of paths
        A table of sequences or coordinates, a TransEPI or BENGI file, an enhancer FASTA (with ``promoter``
        and ``labels``), a list of such files, or a folder of tables (or of FASTA triplets). Several files
        become one dataset.
    promoter, labels : path, optional
        The promoter FASTA and labels file of a FASTA triplet.
    genome : path, optional
        Genome FASTA (``pyfaidx``) for coordinates; the user's own hg19/hg38, never downloaded.
    cell_line : str, optional
        Cell line of every pair (wins over a ``cell_line`` column and name prefixes).
    enhancer_len, promoter_len : int, optional
        Fixed lengths (centred crop/pad with N). Sequences default to the longest one; coordinates to
        3000/2000 bp.
    ccres, tss : path, optional
        BENGI's annotation BEDs (``hg19-cCREs.bed.gz``, ``GENCODEv19-TSSs.bed.gz``) for BENGI pair files.
    """
    for name, value in (("enhancer_len", enhancer_len), ("promoter_len", promoter_len)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise DataError(f"load: {name}={value!r}; expected a positive whole number of bases (or None)")
    options = dict(promoter=promoter, labels=labels, genome=genome, cell_line=cell_line, enhancer_len=enhancer_len,
                   promoter_len=promoter_len, ccres=ccres, tss=tss)
    if isinstance(path, (list, tuple)):
        if not path:
            raise DataError("load: an empty list of paths; expected at least one data file")
        parts = [load(p, **options) for p in path]
        return parts[0] if len(parts) == 1 else concat(parts, enhancer_len, promoter_len, [str(p) for p in path])
    path = Path(path)
    if path.is_dir():
        return _load_folder(path, options)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.name.lower().endswith(FASTA_SUFFIXES):
        if promoter is None or labels is None:
            raise DataError(f"{path}: a FASTA enhancer file needs promoter=<FASTA> and labels=<file>")
        match = _triplet_enhancer(path)
        return load_fasta_triplet(path, promoter, labels, cell_line or (match["cell"] if match else "unknown"),
                                  enhancer_len, promoter_len)
    kind, table = sniff(path)
    if kind == "bengi":
        return load_bengi(path, genome, ccres, tss, cell_line, enhancer_len, promoter_len, table)
    if kind == "transepi" or ("enhancer_chrom" in table.columns and "enhancer_seq" not in table.columns):
        return load_coordinates(path, genome, enhancer_len or DEFAULT_LENGTHS[0], promoter_len or DEFAULT_LENGTHS[1],
                                table, cell_line, header=kind != "transepi")
    if "enhancer_seq" in table.columns:
        return _with_truth(path, table, _from_sequence_table(path, table, enhancer_len, promoter_len, cell_line))
    known = "; ".join(f"{name} ({text})" for name, text in FORMATS.items())
    raise DataError(f"{path}: unrecognised format; columns seen {list(table.columns)[:20]}; known formats: {known}")


def concat(parts: list[EPIDataset], enhancer_len: int | None = None, promoter_len: int | None = None,
           sources: list[str] | None = None) -> EPIDataset:
    """One dataset from several (e.g. one file per cell line), sequences refitted to common lengths.

    A pair id that occurs twice in one cell line keeps its first copy; with conflicting labels or other sequences
    it is an error naming the two ``sources`` (default "part k of the list"). The same pair in two cell lines is
    two samples.
    """
    width_e = enhancer_len or max(p.enhancer_len for p in parts)
    width_p = promoter_len or max(p.promoter_len for p in parts)

    def refit(matrix, width):
        return matrix if matrix.shape[1] == width else np.stack([fit_length(row, width) for row in matrix])

    source = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    meta = pd.concat([p.meta for p in parts], ignore_index=True)
    labels = np.concatenate([p.labels for p in parts])
    names = sources or [f"part {k + 1} of the list" for k in range(len(parts))]
    enhancer = np.concatenate([refit(p.enhancer, width_e) for p in parts])
    promoter = np.concatenate([refit(p.promoter, width_p) for p in parts])
    return _assemble("load", enhancer, promoter, labels, meta, lambda row: names[source[row]])


def _load_folder(folder: Path, options: dict) -> EPIDataset:
    """A folder of FASTA triplets, else every table directly inside it (a README or LICENSE file beside the data,
    as downloads carry, is no table)."""
    if any(_triplet_enhancer(p) for p in folder.iterdir()):
        return _load_fasta_folder(folder, options["enhancer_len"], options["promoter_len"])
    tables = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(TABLE_SUFFIXES)
                    and not _is_truth_companion(p) and not p.name.lower().startswith(("readme", "license")))
    if not tables:
        raise DataError(f"{folder}: no data files; expected tables ({', '.join(TABLE_SUFFIXES)}) or FASTA triplets "
                        "<cell>_enhancer.fa, <cell>_promoter.fa, <cell>_label.txt")
    return load(tables, **options)


def _with_truth(path: Path, table: pd.DataFrame, dataset: EPIDataset) -> EPIDataset:
    """The dataset with the planted motifs ``cbat synth`` wrote beside its table (``<stem>.truth.<ext>``), so
    attribution can score recovery on the files as on the generated data. Attached only while the pairs are the
    table's rows as written (none dropped as a duplicate, no sequence cut or padded to another length), since
    the truth names rows and bases; otherwise the data load without it and a warning says why."""
    companion = path.with_name(f"{path.stem}.truth{path.suffix}")
    if not companion.is_file():
        return dataset
    truth = read_table(companion)
    truth.attrs.clear()  # the reader's line numbers: rows here are named by their position
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise DataError(f"{companion}: missing column(s) {missing}; expected the ground truth cbat synth writes "
                        f"({', '.join(TRUTH_COLUMNS)})")
    try:
        truth = truth.astype({"pair_index": int, "start": int, "end": int})
        if "strength" in truth:
            truth = truth.astype({"strength": float})
    except (TypeError, ValueError) as err:
        raise DataError(f"{companion}: {err}; expected whole numbers in pair_index, start and end") from None
    lengths = {"enhancer": dataset.enhancer_len, "promoter": dataset.promoter_len}
    written = {side: table[f"{side}_seq"].astype(str).str.len().to_numpy() for side in lengths}
    if len(dataset) != len(table) or any((written[side] != lengths[side]).any() for side in lengths):
        warnings.warn(f"{companion}: ground truth not attached: the pairs were deduplicated or cut/padded to "
                      f"{lengths['enhancer']}/{lengths['promoter']} bp on loading, so its rows and bases no longer "
                      "match", stacklevel=3)
        return dataset
    size = truth["side"].map(lengths)
    bad = np.flatnonzero((size.isna() | (truth["pair_index"] < 0) | (truth["pair_index"] >= len(dataset))
                          | (truth["start"] < 0) | (truth["end"] > size.fillna(0)) | (truth["start"] >= truth["end"]))
                         .to_numpy())
    if bad.size:
        row = truth.iloc[bad[0]]
        raise DataError(f"{companion}: row {bad[0] + 1}: pair_index {row.pair_index}, side {row.side!r}, bases "
                        f"{row.start}-{row.end}; expected a pair of the {len(dataset)} in {path.name}, side enhancer "
                        f"or promoter, and bases inside it")
    return replace(dataset, truth=truth.reset_index(drop=True))


def _is_truth_companion(path: Path) -> bool:
    """``<stem>.truth.<ext>`` next to ``<stem>.<ext>``: the planted motifs ``cbat synth`` writes beside its data."""
    name = path.name
    stem, dot, ext = name.partition(".truth.")
    return bool(dot) and (path.parent / f"{stem}.{ext}").is_file()


# --- recognising a file ----------------------------------------------------------------------------------
def _text_handle(path: Path):
    """The file opened as text, gunzipped when its name ends in .gz."""
    return (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rt", errors="replace")


def _first_line(path: Path) -> str:
    try:
        with _text_handle(path) as handle:
            for line in handle:
                if line.strip():
                    return line.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt gzip file ({err})") from None
    return ""


def _is_int(text: str) -> bool:
    return text.strip().isdigit()


def sniff(path: Path) -> tuple[str, pd.DataFrame]:
    """``(kind, table)``: ``"bengi"`` or ``"transepi"`` for those headerless files (columns named by
    ``BENGI_COLUMNS`` / ``TRANSEPI_COLUMNS``), else ``"header"`` with the file's own header."""
    if not path.name.lower().endswith((".parquet", ".pq")):
        fields = _first_line(path).split("\t")
        # recognised by its label and cv-group fields, so a line with an extra field is named, not read as a header
        if len(fields) >= 4 and fields[2].strip() in ("0", "1") and fields[3].strip().startswith("cv-"):
            if len(fields) != len(BENGI_COLUMNS):
                raise DataError(f"{path}: line 1 has {len(fields)} tab-separated fields; a BENGI pair file has "
                                f"{len(BENGI_COLUMNS)}: {', '.join(BENGI_COLUMNS)}")
            return "bengi", read_table(path, BENGI_COLUMNS)
        # recognised by its integer enhancer start/end, not by its label: a bad first label (e.g. 2) is then named on
        # its line instead of the whole file reading as an unknown header
        if len(fields) >= 9 and _is_int(fields[3]) and _is_int(fields[4]):
            if len(fields) != len(TRANSEPI_COLUMNS):
                raise DataError(f"{path}: line 1 has {len(fields)} tab-separated fields; a TransEPI table has "
                                f"{len(TRANSEPI_COLUMNS)}: {', '.join(TRANSEPI_COLUMNS)}")
            return "transepi", read_table(path, TRANSEPI_COLUMNS)
    return "header", read_table(path)


def read_table(path: Path, names=None) -> pd.DataFrame:
    """A CSV / TSV / Parquet file (optionally gzipped) as a DataFrame of strings; ``names`` for files
    without a header line."""
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            table = pd.read_parquet(path)
        else:
            sep = "\t" if name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False,
                                header=None if names else "infer", names=list(names) if names else None)
            # blank lines are skipped, but errors name the file line of a row, so each row keeps its line number
            blank = table.apply(lambda column: column.str.strip() == "").all(axis=1).to_numpy()
            table = table[~blank].reset_index(drop=True)
            table.attrs["file_lines"] = np.flatnonzero(~blank) + (1 if names else 2)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header line and rows") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: truncated or corrupt gzip file ({err})") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        raise DataError(f"{path}: cannot be read as a table ({str(err).splitlines()[0]})") from None
    if table.empty:
        raise DataError(f"{path}: the table has no rows")
    if names is None and len(table.columns) == 1 and not name.endswith((".parquet", ".pq")):
        other = {",": ("\t", "tab", ".tsv"), "\t": (",", "comma", ".csv")}[sep]
        if other[0] in str(table.columns[0]):  # the separator follows the file name: say which one it holds
            raise DataError(f"{path}: one column {str(table.columns[0])[:60]!r}...; the file looks "
                            f"{other[1]}-separated, so name it {other[2]} (tables are read by their suffix)")
    return table.rename(columns=lambda c: c.strip() if isinstance(c, str) else c)  # "label " is "label"


def _line(path: Path, row: int, header: bool = True, table: pd.DataFrame | None = None) -> str:
    """Human position of a data row: file line for text tables (blank lines counted, from ``read_table``'s
    ``file_lines`` when ``table`` is given), row for Parquet."""
    if path.name.lower().endswith((".parquet", ".pq")):
        return f"row {row + 1}"
    lines = table.attrs.get("file_lines") if table is not None else None
    if lines is not None and row < len(lines):
        return f"line {lines[row]}"
    return f"line {row + 2 if header else row + 1}"


def _require(path: Path, table: pd.DataFrame, columns, kind: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: {kind} table is missing column(s) {missing}; expected {list(columns)}, "
                        f"found {list(table.columns)[:20]}")


def _labels(path: Path, values, where) -> np.ndarray:
    text = pd.Series(values).astype(str).str.strip().str.lower()
    mapped = text.map({"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0})
    bad = np.flatnonzero(mapped.isna().to_numpy())
    if bad.size:
        raise DataError(f"{path}: {where(bad[0])}, field 'label': {str(values[bad[0]])!r} is not 0 or 1")
    return mapped.to_numpy(dtype=np.int64)


_PRIMARY_CONTIG = re.compile(r"(\d+|X|Y|M|MT)", re.IGNORECASE)


def canonical_chrom(values) -> np.ndarray:
    """Chromosome names in one spelling, so a chromosome split cannot put ``1`` in training and ``chr1`` in
    test: surrounding spaces dropped, ``chr`` prefixed to primary contigs (``1``, ``X``, ``chrx`` ->
    ``chr1``, ``chrX``; ``MT`` -> ``chrM``); other names (scaffolds, "unknown") as written."""
    out = []
    for value in np.asarray(values, dtype=object):
        name = str(value).strip()
        bare = name[3:] if name.lower().startswith("chr") else name
        if _PRIMARY_CONTIG.fullmatch(bare):
            bare = bare.upper()
            name = "chrM" if bare in ("M", "MT") else "chr" + bare
        out.append(name)
    return np.array(out, dtype=object)


def _sequence_id(seq: str) -> str:
    return "seq:" + hashlib.md5(seq.upper().encode()).hexdigest()[:12]


def _check_duplicates(path, meta: pd.DataFrame, labels: np.ndarray, where, enhancer: np.ndarray,
                      promoter: np.ndarray) -> np.ndarray:
    """Keep the first of duplicate pair ids within a cell line; conflicting labels or other sequences under one id
    are an error (dropping them would lose pairs without a word). Returns rows to keep. (BENGI's files of two
    cell lines share cCRE-gene pairs: each cell line's copy is its own sample.)"""
    from cbat.data.splits import flag_column

    try:
        held = flag_column(meta, "held_out")
    except ValueError as err:
        raise DataError(f"{path}: {err}") from None
    frame = pd.DataFrame({"cell_line": meta["cell_line"].astype(str).to_numpy(),
                          "pair_id": meta["pair_id"].astype(str).to_numpy(), "label": labels})
    key = ["cell_line", "pair_id"]
    first: dict[tuple[str, str], int] = {}
    for row in np.flatnonzero(frame.duplicated(key, keep=False).to_numpy()):
        cell, pid = frame.at[row, "cell_line"], frame.at[row, "pair_id"]
        seen = first.setdefault((cell, pid), row)
        if seen == row:
            continue
        if labels[seen] != labels[row]:
            problem = "conflicting labels; expected one label per pair"
        elif held[seen] != held[row]:  # kept once, it would be trained on or tested as held out without a word
            problem = "held_out True in one place and False in the other; a held-out test pair must not be trained on"
        elif not (np.array_equal(enhancer[seen], enhancer[row]) and np.array_equal(promoter[seen], promoter[row])):
            problem = "different sequences; expected one pair per id (give each file its own pair ids)"
        else:
            continue
        raise DataError(f"{path}: pair_id {pid!r} ({cell}) appears at {where(seen)} and {where(row)} with {problem}")
    return np.flatnonzero(~frame.duplicated(key).to_numpy())


def _meta(table: pd.DataFrame, enhancer_seqs, promoter_seqs) -> pd.DataFrame:
    n = len(table)
    get = lambda col, default: table[col].astype(str).to_numpy() if col in table.columns else default  # noqa: E731
    enhancer_id = get("enhancer_id", np.array([_sequence_id(s) for s in enhancer_seqs]))
    promoter_id = get("promoter_id", np.array([_sequence_id(s) for s in promoter_seqs]))
    meta = pd.DataFrame({
        # without ids, a pair is its two sequences: ids stay distinct across files, and a repeated pair is one
        "pair_id": get("pair_id", np.char.add(np.char.add(enhancer_id.astype(str), "~"), promoter_id.astype(str))),
        "cell_line": get("cell_line", np.full(n, "unknown")),
        "chrom": canonical_chrom(get("chrom", np.full(n, "unknown"))),
        "enhancer_id": enhancer_id,
        "promoter_id": promoter_id,
    })
    # Any further columns (loci, mechanism ...) ride along unchanged.
    extra = [c for c in table.columns if c not in meta.columns and c not in ("enhancer_seq", "promoter_seq", "label")]
    return pd.concat([meta, table[extra].reset_index(drop=True)], axis=1)


def _assemble(path, enhancer, promoter, labels, meta, where) -> EPIDataset:
    cells = meta["cell_line"].astype(str).str.strip()  # " GM12878" is GM12878 for a cell-line split
    empty = np.flatnonzero((cells == "").to_numpy())
    if empty.size:
        raise DataError(f"{path}: {where(empty[0])}, field 'cell_line': empty; expected a cell line name (or pass "
                        "cell_line=<name>)")
    meta = meta.assign(cell_line=cells.to_numpy())
    empty = np.flatnonzero((meta["chrom"].astype(str).str.strip() == "").to_numpy())
    if empty.size:  # it would form a chromosome of its own in a chromosome split
        raise DataError(f"{path}: {where(empty[0])}, field 'chrom': empty; expected a chromosome name (e.g. chr1)")
    keep = _check_duplicates(path, meta, labels, where, enhancer, promoter)
    return EPIDataset(enhancer[keep], promoter[keep], labels[keep], meta.iloc[keep].reset_index(drop=True))


def _from_sequence_table(path: Path, table: pd.DataFrame, enhancer_len, promoter_len, cell_line=None) -> EPIDataset:
    read = table
    if cell_line is not None:
        table = table.assign(cell_line=cell_line)
    _require(path, table, SEQUENCE_COLUMNS, "a sequences")
    where = lambda row: _line(path, row, table=read)  # noqa: E731
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


# A locus in a FASTA header's first word: chr3:1000-4000, 3:1000-4000, chr3_1000_4000, GM12878|chr3:1000-4000.
_LOCUS = re.compile(r"(?:^|\|)((?:chr)?[A-Za-z0-9.]+)[:_]\d+[-_]\d+")


def _canonical_locus(name: str) -> str:
    """A record name with the chromosome of its locus in ``canonical_chrom``'s spelling (``1:0-300`` ->
    ``chr1:0-300``); other names as written, without surrounding spaces."""
    name = name.strip()
    match = _LOCUS.search(name)
    if not match:
        return name
    return name[:match.start(1)] + canonical_chrom([match.group(1)])[0] + name[match.end(1):]


def load_fasta_triplet(enhancer, promoter, labels, cell_line: str = "unknown", enhancer_len=None,
                       promoter_len=None) -> EPIDataset:
    """Pairs from an enhancer FASTA, a promoter FASTA (record i pairs with record i) and a labels file.

    A header holding a locus (``chr3:1000-4000``, ``3:1000-4000``, ``GM12878|chr3:1000-4000``) gives the pair's
    chromosome.
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
    chrom = canonical_chrom([m.group(1) if (m := _LOCUS.search(name)) else "unknown" for name, _ in enh])
    # ids in one chromosome spelling: "1:0-300" in one file and "chr1:0-300" in another are one element
    enh_ids, prom_ids = ([_canonical_locus(n) for n, _ in records] for records in (enh, prom))
    meta = pd.DataFrame({"pair_id": [f"{cell_line}|{e}|{p}" for e, p in zip(enh_ids, prom_ids)],
                         "cell_line": cell_line, "chrom": chrom, "enhancer_id": enh_ids, "promoter_id": prom_ids})
    return _assemble(labels, encoded[0], encoded[1], y, meta, lambda row: f"record {row + 1}")


_FASTA_SUFFIX = "(?:" + "|".join(re.escape(suffix) for suffix in FASTA_SUFFIXES) + ")"
# <cell>_enhancer[s][<tag>].fa[sta|.fna][.gz]; the tag (e.g. "_test") names one triplet of several per cell line.
_TRIPLET_ENHANCER = re.compile(r"(?P<cell>.+?)(?P<sep>[_.])enhancers?(?P<tag>(?:[_.-][A-Za-z0-9]+)*)" + _FASTA_SUFFIX
                               + "$", re.IGNORECASE)


def _triplet_enhancer(path: Path):
    return _TRIPLET_ENHANCER.match(path.name)


def _companion(folder: Path, enhancer: Path, cell: str, tag: str, kind: str, suffix: str, what: str) -> Path:
    """The one file of ``folder`` named ``<cell><kind><tag><suffix>`` (``kind`` and ``suffix`` regexes), the
    enhancer file's partner."""
    pattern = re.escape(cell) + kind + re.escape(tag) + suffix
    found = sorted(p for p in folder.iterdir() if p.is_file() and re.fullmatch(pattern, p.name, re.IGNORECASE))
    if len(found) != 1:
        raise DataError(f"{folder}: {enhancer.name} needs exactly one {what}; found "
                        f"{[p.name for p in found] or 'none'}")
    return found[0]


def _load_fasta_folder(folder: Path, enhancer_len, promoter_len) -> EPIDataset:
    parts, names, used = [], [], set()
    for enhancer in sorted(folder.iterdir()):
        match = _triplet_enhancer(enhancer)
        if not match:
            continue
        cell, sep, tag = match["cell"], match["sep"], match["tag"] or ""
        promoter = _companion(folder, enhancer, cell, tag, re.escape(sep) + "promoters?", _FASTA_SUFFIX,
                              f"promoter FASTA {cell}{sep}promoter{tag}.fa")
        labels = _companion(folder, enhancer, cell, tag, f"(?:{re.escape(sep)})?labels?", r"\.(?:txt|csv|tsv)(?:\.gz)?",
                            f"labels file {cell}{sep}label{tag}.txt")
        parts.append(load_fasta_triplet(enhancer, promoter, labels, cell, enhancer_len, promoter_len))
        names.append(str(enhancer))
        used |= {enhancer, promoter}
    stray = sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(FASTA_SUFFIXES) and p not in used)
    if stray:  # a FASTA no triplet takes would be left out without a word
        raise DataError(f"{folder}: {', '.join(stray)}: no triplet takes these FASTA files; expected "
                        "<cell>_enhancer[<tag>].fa with <cell>_promoter[<tag>].fa and <cell>_label[<tag>].txt")
    return parts[0] if len(parts) == 1 else concat(parts, enhancer_len, promoter_len, names)


# --- coordinates + genome --------------------------------------------------------------------------------
_LOCUS_FIELD = re.compile(r"^[\w.]+:\d+-\d+$")


def _cell_lines(path: Path, table: pd.DataFrame, cell_line, where) -> np.ndarray:
    """Cell line per row: ``cell_line=``, else a ``cell_line`` column, else the non-locus ``|`` field of
    ``enhancer_name`` (TargetFinder ``HUVEC|chr1:...``, TransEPI ``chr12:...|NHEK|EH37E...``)."""
    if cell_line is not None:
        return np.full(len(table), str(cell_line).strip(), dtype=object)
    if "cell_line" in table.columns:
        return table["cell_line"].astype(str).str.strip().to_numpy()  # " GM12878" is GM12878, in pair ids too
    if "enhancer_name" not in table.columns:
        raise DataError(f"{path}: no cell line: the table has neither a 'cell_line' nor an 'enhancer_name' column "
                        "(e.g. 'HUVEC|chr1:3420459-3421842'); pass cell_line=<name>")
    names = table["enhancer_name"].astype(str).to_numpy()
    cells = np.empty(len(names), dtype=object)
    for row, name in enumerate(names):
        cells[row] = next((f for f in name.split("|") if f and not _LOCUS_FIELD.match(f)), None)
        if cells[row] is None or "|" not in name:
            raise DataError(f"{path}: {where(row)}, field 'enhancer_name': no cell line in {name!r}; expected "
                            "'CELL|chr1:100-200' or 'chr1:100-200|CELL|...', or pass cell_line=<name>")
    return cells


def open_genome(genome):
    """A ``pyfaidx.Fasta`` of the user's genome, with a clear error when it is missing or unreadable."""
    import pyfaidx

    genome = Path(genome)
    if not genome.is_file():
        raise DataError(f"{genome}: genome FASTA not found")
    try:
        # rebuild: an index older than the FASTA (the genome replaced, its .fai left) is read again, not trusted
        return pyfaidx.Fasta(str(genome), sequence_always_upper=True)
    except (pyfaidx.FastaIndexingError, OSError, ValueError) as err:
        raise DataError(f"{genome}: cannot index the genome FASTA ({err})") from None


def _contig(fasta, chrom: str):
    """The genome's name for ``chrom``: as written, or with ``chr`` added or dropped (chrM <-> MT too)."""
    bare = chrom[3:] if chrom.lower().startswith("chr") else chrom
    for name in (chrom, bare, "chr" + bare, "MT" if bare == "M" else "chrM" if bare == "MT" else None):
        if name is not None and name in fasta:
            return name
    return None


def load_coordinates(path, genome, enhancer_len: int = DEFAULT_LENGTHS[0], promoter_len: int = DEFAULT_LENGTHS[1],
                     table: pd.DataFrame | None = None, cell_line: str | None = None, header: bool = True,
                     where=None) -> EPIDataset:
    """Pairs from a coordinates table (TargetFinder ``pairs.csv`` and kin) and a genome FASTA.

    Each region is centred and cut to the fixed length; parts beyond a contig end are padded with N.
    Coordinates are 0-based half-open like BED. ``meta`` keeps every column of the table, with the six
    coordinate columns as integers.
    """
    path = Path(path)
    table = read_table(path) if table is None else table
    _require(path, table, COORDINATE_COLUMNS, "a coordinates")
    if genome is None:
        raise DataError(f"{path}: a coordinates table needs genome=<FASTA> (your hg19/hg38; never downloaded)")
    fasta = open_genome(genome)
    read = table
    where = where or (lambda row: _line(path, row, header, read))
    labels = _labels(path, table["label"].to_numpy(), where)
    cells = _cell_lines(path, table, cell_line, where)
    sides, loci = {}, {}
    for side, length in (("enhancer", enhancer_len), ("promoter", promoter_len)):
        chrom = table[f"{side}_chrom"].astype(str).str.strip().to_numpy()  # " chr1" is chr1, as in the split
        start = _integers(path, table, f"{side}_start", where)
        end = _integers(path, table, f"{side}_end", where)
        codes = np.empty((len(table), length), dtype=np.uint8)
        for row in range(len(table)):
            codes[row] = _fetch(fasta, Path(genome), path, where(row), side, chrom[row], start[row], end[row], length)
        sides[side] = codes
        # one spelling in ids and meta: "1" and "chr1" name one locus (duplicates, distances, splits)
        chrom = canonical_chrom(chrom)
        loci[side] = [f"{c}:{s}-{e}" for c, s, e in zip(chrom, start, end)]
        table = table.assign(**{f"{side}_chrom": chrom, f"{side}_start": start, f"{side}_end": end})
    trans = np.flatnonzero(table["enhancer_chrom"].to_numpy() != table["promoter_chrom"].to_numpy())
    if trans.size:
        warnings.warn(f"{path}: {trans.size} pair(s) have the enhancer and the promoter on different chromosomes "
                      f"(first: {where(trans[0])}); a chromosome split places them by the enhancer's", stacklevel=3)
    if "pair_id" in table.columns:
        pair_id = table["pair_id"].astype(str).to_numpy()
    elif {"enhancer_name", "promoter_name"} <= set(table.columns):  # names tell transcripts of one locus apart
        pair_id = (table["enhancer_name"].astype(str) + "~" + table["promoter_name"].astype(str)).to_numpy()
    else:
        pair_id = [f"{c}|{e}|{p}" for c, e, p in zip(cells, loci["enhancer"], loci["promoter"])]
    meta = pd.DataFrame({"pair_id": pair_id, "cell_line": cells, "chrom": table["enhancer_chrom"].to_numpy(),
                         "enhancer_id": loci["enhancer"], "promoter_id": loci["promoter"]})
    extra = [c for c in table.columns if c not in meta.columns and c != "label"]
    meta = pd.concat([meta, table[extra].reset_index(drop=True)], axis=1)
    return _assemble(path, sides["enhancer"], sides["promoter"], labels, meta, where)


def _integers(path, table, column, where) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | (values.to_numpy() % 1 != 0))
    if bad.size:
        raise DataError(f"{path}: {where(bad[0])}, field {column!r}: {table[column].iloc[bad[0]]!r} is not an integer")
    return values.to_numpy().astype(np.int64)


def _fetch(fasta, genome, path, where, side, chrom, start, end, length) -> np.ndarray:
    contig = _contig(fasta, chrom)
    if contig is None:
        raise DataError(f"{path}: {where}, field '{side}_chrom': {chrom!r} is not in {genome.name}, with or without "
                        f"'chr' (it has {', '.join(list(fasta.keys())[:5])}...)")
    size = len(fasta[contig])
    if start < 0 or start >= end:
        raise DataError(f"{path}: {where}, fields '{side}_start'/'{side}_end': {start} >= {end} or negative; "
                        "expected 0 <= start < end")
    if end > size:
        raise DataError(f"{path}: {where}, field '{side}_end': {end} is beyond the end of {contig} ({size} bp) "
                        f"in {genome.name}; is this the right assembly?")
    centre = (start + end) // 2
    lo, hi = centre - length // 2, centre - length // 2 + length
    seq = fasta[contig][max(lo, 0):min(hi, size)].seq
    if len(seq) != min(hi, size) - max(lo, 0):
        raise DataError(f"{genome}: {contig}:{max(lo, 0)}-{min(hi, size)} reads as {len(seq)} bases; its index "
                        f"{genome.name}.fai was made for another file (a genome unpacked from an archive can be older "
                        "than its index: delete the .fai), or the FASTA's lines are not all the same length (re-wrap "
                        "it, e.g. `seqkit seq -w 60`)")
    try:
        codes = encode(seq, f"{genome}: {contig}:{max(lo, 0)}-{min(hi, size)}")
    except SequenceError as err:
        raise DataError(str(err)) from None
    out = np.full(length, N_CODE, dtype=np.uint8)
    out[max(lo, 0) - lo:max(lo, 0) - lo + codes.size] = codes
    return out


# --- BENGI -----------------------------------------------------------------------------------------------
def _bed_header_lines(path: Path) -> int:
    """Leading UCSC ``track``/``browser`` lines of a BED file (a genome browser's export starts with them)."""
    count = 0
    with _text_handle(path) as handle:
        for line in handle:
            if not line.startswith(("track", "browser")):
                break
            count += 1
    return count


def _bed(path, columns: dict[int, str], what: str) -> pd.DataFrame:
    """Selected 0-based columns of a headerless BED (gzip allowed)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        header = _bed_header_lines(path)
        bed = pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False, comment="#", skiprows=header)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot be read as a BED file ({str(err).splitlines()[0]})") from None
    if bed.shape[1] <= max(columns):
        raise DataError(f"{path}: {bed.shape[1]} columns; {what} needs column {max(columns) + 1} "
                        f"({', '.join(columns.values())})")
    bed = bed[list(columns)].set_axis(list(columns.values()), axis=1)
    for number, column in ((2, "start"), (3, "end")):
        if column not in bed.columns:
            continue
        bed[column] = pd.to_numeric(bed[column], errors="coerce")
        bad = np.flatnonzero(bed[column].isna().to_numpy() | (bed[column].to_numpy() % 1 != 0))
        if bad.size:
            raise DataError(f"{path}: line {bad[0] + 1 + header}, column {number}: {column} is not an integer")
        bed[column] = bed[column].astype(np.int64)
    bed["chrom"] = canonical_chrom(bed["chrom"].to_numpy())
    return bed


def load_bengi(path, genome, ccres, tss, cell_line: str | None = None, enhancer_len: int | None = None,
               promoter_len: int | None = None, table: pd.DataFrame | None = None) -> EPIDataset:
    """Pairs from a BENGI benchmark file plus BENGI's cCRE and TSS annotation BEDs and a genome FASTA.

    The enhancer is the cCRE; the promoter window is centred on the gene's TSS nearest the enhancer
    (BENGI's own distance rule), so ``enhancer_distance_to_promoter`` in ``meta`` is BENGI's distance.
    """
    path = Path(path)
    if ccres is None or tss is None:
        raise DataError(f"{path}: a BENGI pair file has no coordinates; pass ccres=<hg19-cCREs.bed.gz> and "
                        "tss=<GENCODEv19-TSSs.bed.gz> (weng-lab/BENGI Benchmark/Annotations)")
    table = read_table(path, BENGI_COLUMNS) if table is None else table
    where = lambda row: _line(path, row, header=False, table=table)  # noqa: E731
    elements = _bed(ccres, {0: "chrom", 1: "start", 2: "end", 4: "ccre"}, "the cCRE BED (ccres=)")
    elements = elements.drop_duplicates("ccre").set_index("ccre")
    starts = _bed(tss, {0: "chrom", 1: "start", 6: "gene"}, "the TSS BED (tss=)")
    by_gene = {gene: group for gene, group in starts.groupby("gene")}
    ccre, gene = table["ccre"].str.strip().to_numpy(), table["gene"].str.strip().to_numpy()
    rows = []
    for row in range(len(table)):
        if ccre[row] not in elements.index:
            raise DataError(f"{path}: {where(row)}, field 'ccre': {ccre[row]!r} is not in {Path(ccres).name}")
        if gene[row] not in by_gene:
            raise DataError(f"{path}: {where(row)}, field 'gene': {gene[row]!r} is not in {Path(tss).name}")
        enh = elements.loc[ccre[row]]
        sites = by_gene[gene[row]]
        sites = sites[sites["chrom"] == enh["chrom"]]  # BENGI's pairs are in cis: a PAR gene's chrY TSS is no candidate
        if sites.empty:
            raise DataError(f"{path}: {where(row)}: gene {gene[row]!r} has no TSS on {enh['chrom']} (cCRE "
                            f"{ccre[row]!r}) in {Path(tss).name}; expected a pair on one chromosome")
        where_tss = sites["start"].to_numpy()
        gaps = np.minimum(np.abs(enh["start"] - where_tss), np.abs(enh["end"] - where_tss))
        best = int(np.argmin(gaps))
        site = int(sites["start"].iat[best])
        rows.append((enh["chrom"], int(enh["start"]), int(enh["end"]), sites["chrom"].iat[best], site, site + 1,
                     int(gaps[best])))
    coords = pd.DataFrame(rows, columns=["enhancer_chrom", "enhancer_start", "enhancer_end", "promoter_chrom",
                                         "promoter_start", "promoter_end", "enhancer_distance_to_promoter"])
    cell = cell_line or path.name.split(".")[0]
    coords = pd.concat([coords, table.rename(columns={"ccre": "enhancer_name", "gene": "promoter_name"})
                        .reset_index(drop=True)], axis=1)
    return load_coordinates(path, genome, enhancer_len or DEFAULT_LENGTHS[0], promoter_len or DEFAULT_LENGTHS[1],
                            coords, cell, where=where)

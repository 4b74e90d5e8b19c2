"""Loaders: tables, FASTA triplets, coordinates + genome; and one clear error per kind of bad input."""
import gzip

import numpy as np
import pandas as pd
import pytest

from cbat.data import DataError, decode, load

ENH = ["ACGTACGTAA", "ccggttaaNN", "ACGTRYACGT"]
PROM = ["GGGCCC", "ATATAT", "CGCGCG"]


def _table(**overrides):
    frame = pd.DataFrame({"enhancer_seq": ENH, "promoter_seq": PROM, "label": ["1", "0", "1"],
                          "cell_line": ["GM12878", "K562", "GM12878"], "chrom": ["chr1", "chr2", "chr1"]})
    for key, value in overrides.items():
        if value is None:
            frame = frame.drop(columns=key)
        else:
            frame[key] = value
    return frame


def _fasta(path, records):
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records))
    return path


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    folder = tmp_path_factory.mktemp("genome")
    rng = np.random.default_rng(0)
    seqs = {"chr1": "".join(rng.choice(list("ACGT"), 300)), "chr2": "".join(rng.choice(list("ACGT"), 120))}
    path = folder / "genome.fa"
    path.write_text("".join(f">{c}\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n"
                            for c, s in seqs.items()))
    return path, seqs


def _coords(**overrides):
    frame = pd.DataFrame({"enhancer_chrom": ["chr1", "chr2"], "enhancer_start": [100, 10],
                          "enhancer_end": [140, 30], "promoter_chrom": ["chr1", "chr2"],
                          "promoter_start": [200, 50], "promoter_end": [220, 60], "label": [1, 0],
                          "cell_line": ["GM12878", "GM12878"]})
    for key, value in overrides.items():
        frame[key] = value
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".tsv.gz", ".parquet"])
def test_table_formats_round_trip(tmp_path, suffix):
    path = tmp_path / f"pairs{suffix}"
    frame = _table()
    if suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, sep="\t" if ".tsv" in suffix else ",", index=False)
    ds = load(path)
    assert len(ds) == 3 and list(ds.labels) == [1, 0, 1]
    assert ds.enhancer.shape == (3, 10) and ds.promoter.shape == (3, 6)
    assert decode(ds.enhancer[1]) == "CCGGTTAANN"
    assert ds.cell_lines == ["GM12878", "K562"] and list(ds.meta["chrom"]) == ["chr1", "chr2", "chr1"]
    # identical sequences share an element id, so the propensity baseline can see them
    assert ds.meta["promoter_id"].nunique() == 3


def test_tables_without_pair_ids_keep_every_pair_across_files(tmp_path):
    # ids default to the pair's two sequences: two files of one cell line do not clash on row numbers,
    # and the same pair written twice is one pair
    first = _write_csv(tmp_path, _table(cell_line="GM12878"), "a.csv")
    second = _write_csv(tmp_path, _table(cell_line="GM12878", enhancer_seq=["TTTTACGTAA", "GGGGTTAANN", "AAAA"]),
                        "b.csv")
    assert len(load([first, second])) == 6
    assert len(load([first, first])) == 3


def test_header_names_are_read_without_surrounding_spaces(tmp_path):
    path = tmp_path / "pairs.csv"
    text = _table().to_csv(index=False)
    header, rest = text.split("\n", 1)
    path.write_text(", ".join(header.split(",")) + " \n" + rest)  # "enhancer_seq, promoter_seq, ..., chrom "
    ds = load(path)
    assert list(ds.labels) == [1, 0, 1] and ds.cell_lines == ["GM12878", "K562"]


@pytest.mark.parametrize("value", [0, -5, 1.5, "3000", True])
def test_window_lengths_must_be_positive_whole_numbers(tmp_path, value):
    with pytest.raises(DataError, match=f"enhancer_len={value!r}; expected a positive whole number"):
        load(_write_csv(tmp_path, _table()), enhancer_len=value)


def test_the_truth_cbat_synth_writes_beside_its_table_loads_with_it(tmp_path):
    """The truth file was skipped: attribution of a model trained on the written files said "no planted truth"."""
    import cbat.data

    made = cbat.data.synthetic(task="sparse_strong", n_pairs=40, seed=0, enhancer_len=300, promoter_len=200,
                               cell_lines=["GM12878"], cache_dir=None)
    made.to_table().to_csv(tmp_path / "bench.csv", index=False)
    made.truth.to_csv(tmp_path / "bench.truth.csv", index=False)
    for ds in (load(tmp_path / "bench.csv"), load(tmp_path)):  # the file, and the folder holding both
        assert len(ds) == 40 and ds.truth is not None
        pd.testing.assert_frame_equal(ds.truth[list(made.truth.columns)], made.truth.reset_index(drop=True),
                                      check_dtype=False)
    with pytest.warns(UserWarning, match="bench.truth.csv: ground truth not attached: .* cut/padded to 250/200"):
        assert load(tmp_path / "bench.csv", enhancer_len=250).truth is None  # its bases would no longer match
    made.truth.assign(end=made.truth["end"] + 1000).to_csv(tmp_path / "bench.truth.csv", index=False)
    with pytest.raises(DataError, match=r"bench.truth.csv: row 1: pair_index 0, side '\w+', bases \d+-\d+; expected"):
        load(tmp_path / "bench.csv")
    pd.DataFrame({"side": ["enhancer"], "motif_id": ["MA0139.2"]}).to_csv(tmp_path / "bench.truth.csv", index=False)
    with pytest.raises(DataError, match=r"bench.truth.csv: missing column\(s\) \['pair_index'"):
        load(tmp_path / "bench.csv")


def test_table_fixed_lengths_centre_crop_and_pad(tmp_path):
    path = tmp_path / "pairs.csv"
    _table().to_csv(path, index=False)
    ds = load(path, enhancer_len=6, promoter_len=8)
    assert decode(ds.enhancer[0]) == "GTACGT"
    assert decode(ds.promoter[0]) == "NGGGCCCN"


def test_fasta_triplet_files_and_folder(tmp_path):
    _fasta(tmp_path / "NHEK_enhancer.fa", [("chr3:10-20", ENH[0]), ("chr4:5-15", ENH[1])])
    _fasta(tmp_path / "NHEK_promoter.fa", [("p1", PROM[0]), ("p2", PROM[1])])
    (tmp_path / "NHEK_label.txt").write_text("1\n0\n")
    ds = load(tmp_path / "NHEK_enhancer.fa", promoter=tmp_path / "NHEK_promoter.fa",
              labels=tmp_path / "NHEK_label.txt", cell_line="NHEK")
    assert list(ds.labels) == [1, 0] and list(ds.meta["chrom"]) == ["chr3", "chr4"]
    both = load(tmp_path)
    assert len(both) == 2 and both.cell_lines == ["NHEK"]


@pytest.mark.parametrize("spaced", [False, True])
def test_coordinates_centre_and_pad_with_n(genome, tmp_path, spaced):
    path = tmp_path / "pairs.csv"
    frame = _coords()
    if spaced:  # " chr1 " is chr1 for the genome too (only the split's label was cleaned before)
        frame = frame.assign(enhancer_chrom=" " + frame["enhancer_chrom"] + " ")
    frame.to_csv(path, index=False)
    ds = load(path, genome=genome[0], enhancer_len=60, promoter_len=20)
    seqs = genome[1]
    assert decode(ds.enhancer[0]) == seqs["chr1"][90:150]        # centre 120, 60 bp
    assert decode(ds.promoter[0]) == seqs["chr1"][200:220]
    assert decode(ds.enhancer[1]) == "N" * 10 + seqs["chr2"][0:50]  # window 20-30 centred at 20 runs off chr2 start
    assert list(ds.meta["chrom"]) == ["chr1", "chr2"]


def _write_csv(tmp_path, frame, name="pairs.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _bad_cases():
    """(name, builder(tmp_path, genome) -> callable that loads, expected message fragments)."""
    def table(frame, name="pairs.csv"):
        return lambda tmp, g: (lambda: load(_write_csv(tmp, frame, name)))

    def coords(frame):
        return lambda tmp, g: (lambda: load(_write_csv(tmp, frame), genome=g))

    def raw(name, content, **kwargs):
        def build(tmp, g):
            path = tmp / name
            path.write_bytes(content)
            return lambda: load(path, **kwargs)
        return build

    def triplet(enh, prom, labels):
        def build(tmp, g):
            e, p, y = tmp / "c_enhancer.fa", tmp / "c_promoter.fa", tmp / "c_label.txt"
            e.write_text(enh), p.write_text(prom), y.write_text(labels)
            return lambda: load(e, promoter=p, labels=y)
        return build

    full_gzip = gzip.compress(_table().to_csv(index=False).encode())
    return [
        ("invalid character", table(_table(enhancer_seq=["ACGT", "ACXT", "AC"])),
         ["pairs.csv", "line 3", "enhancer_seq", "'X'"]),
        ("empty sequence", table(_table(promoter_seq=["ACGT", "", "AC"])), ["line 3", "promoter_seq", "empty"]),
        ("missing column", table(_table(label=None)), ["pairs.csv", "missing column", "label"]),
        ("label not 0/1", table(_table(label=["1", "2", "0"])), ["line 3", "'label'", "'2'", "not 0 or 1"]),
        ("conflicting duplicate ids", table(_table(pair_id=["a", "b", "a"], label=["1", "0", "0"])),
         ["pair_id 'a'", "line 2", "line 4", "conflicting labels"]),
        ("one id, other sequences", table(_table(pair_id=["a", "b", "a"], label=["1", "0", "1"])),
         ["pair_id 'a'", "line 2", "line 4", "different sequences"]),
        ("empty file", raw("pairs.csv", b""), ["pairs.csv", "empty"]),
        ("truncated gzip", raw("pairs.csv.gz", full_gzip[: len(full_gzip) // 2]), ["pairs.csv.gz", "truncated"]),
        ("header only", raw("pairs.csv", b"enhancer_seq,promoter_seq,label,cell_line\n"), ["no rows"]),
        ("fasta count mismatch", triplet(">a\nACGT\n>b\nACGT\n", ">p\nACGT\n>q\nACGT\n", "1\n"),
         ["c_label.txt", "1 labels", "2 records"]),
        ("fasta bad base", triplet(">a\nACGT\n>b\nAC!T\n", ">p\nACGT\n>q\nACGT\n", "1\n0\n"),
         ["c_enhancer.fa", "record 2 (b)", "'!'"]),
        ("fasta text before header", triplet("ACGT\n>a\nACGT\n", ">p\nACGT\n", "1\n"),
         ["c_enhancer.fa", "line 1", "before the first"]),
        ("fasta empty record", triplet(">a\n\n>b\nACGT\n", ">p\nACGT\n>q\nACGT\n", "1\n0\n"),
         ["record 1 (a)", "empty sequence"]),
        ("labels file word", triplet(">a\nACGT\n", ">p\nACGT\n", "yes\n"), ["c_label.txt", "label 1", "'yes'"]),
        ("coordinate beyond chromosome", coords(_coords(enhancer_end=[140, 500])),
         ["line 3", "'enhancer_end'", "beyond the end of chr2"]),
        ("chromosome not in genome", coords(_coords(promoter_chrom=["chr1", "chr9"])),
         ["line 3", "'promoter_chrom'", "'chr9'", "genome.fa"]),
        ("start >= end", coords(_coords(promoter_start=[220, 50])), ["line 2", "'promoter_start'", "220 >= 220"]),
        ("non-integer start", coords(_coords(enhancer_start=["100", "ten"])),
         ["line 3", "'enhancer_start'", "'ten'", "not an integer"]),
        ("coordinates without genome", table(_coords()), ["needs genome="]),
        ("fasta label line of several words", triplet(">a\nACGT\n", ">p\nACGT\n", "1 0 1\n"),
         ["c_label.txt", "label 1", "'1 0 1' is not 0 or 1"]),
        # blank lines are skipped, but the error names the file's own line of the row (it said line 3)
        ("label not 0/1 after blank lines", raw("pairs.csv", "\n \n".join(  # header, blank, first row, blank...
            _table(label=["1", "2", "0"]).to_csv(index=False).splitlines()).encode()), ["line 5", "'label'", "'2'"]),
        ("tab-separated file named .csv", raw("pairs.csv", _table().to_csv(index=False, sep="\t").encode()),
         ["pairs.csv", "looks tab-separated", "name it .tsv"]),
        ("empty cell line", table(_table(cell_line=["GM12878", " ", "GM12878"])), ["line 3", "'cell_line'", "empty"]),
        ("non-integer start after a blank line", lambda tmp, g: (lambda: load(_blank_after_header(
            _write_csv(tmp, _coords(enhancer_start=["100", "ten"]))), genome=g)), ["line 4", "'ten'"]),
    ]


def _blank_after_header(path):
    path.write_text(path.read_text().replace("\n", "\n\n", 1))
    return path


CASES = _bad_cases()


@pytest.mark.parametrize("name, build, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_error(tmp_path, genome, name, build, fragments):
    with pytest.raises(DataError) as info:
        build(tmp_path, genome[0])()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{name}: {fragment!r} not in {message!r}"


def test_enough_distinct_bad_input_cases():
    assert len({c[0] for c in CASES}) >= 12


def test_an_empty_or_missing_chromosome_is_named_not_a_chromosome_of_its_own(tmp_path):
    """An empty chrom went silently into a group of its own; a table without the column read "found ['unknown']"."""
    import cbat.data

    with pytest.raises(DataError, match=r"pairs.csv: line 3, field 'chrom': empty; expected a chromosome name"):
        load(_write_csv(tmp_path, _table(chrom=["chr1", "", "chr2"])))
    no_chrom = load(_write_csv(tmp_path, _table(chrom=None)))
    with pytest.raises(ValueError, match=r"found \['unknown'\]; the pairs name no chromosome: give the data a "
                                         r"'chrom' column"):
        cbat.data.split(no_chrom, by="chrom")

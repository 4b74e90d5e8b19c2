"""The field's published files load as they are (fixtures keep their real headers; see fixtures/formats/README.md)."""
import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from cbat.data import DataError, decode, load, split
from cbat.data.loaders import FORMATS, TARGETFINDER_COLUMNS

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "formats"
GENOME = FIXTURES / "genome.fa"
TARGETFINDER = FIXTURES / "targetfinder"
HUVEC, NHEK = TARGETFINDER / "HUVEC" / "output-ep" / "pairs.csv", TARGETFINDER / "NHEK" / "output-ep" / "pairs.csv"
TRANSEPI = FIXTURES / "transepi" / "NHEK.HiC-Benchmark.v3.tsv.gz"
BENGI = FIXTURES / "bengi"


def _genome_seq(contig):
    text = GENOME.read_text().split(">")[1:]
    return {block.split("\n", 1)[0]: block.split("\n", 1)[1].replace("\n", "") for block in text}[contig]


def test_targetfinder_pairs_load_with_real_header():
    assert list(pd.read_csv(HUVEC, nrows=0).columns) == list(TARGETFINDER_COLUMNS)
    ds = load(HUVEC, genome=GENOME, enhancer_len=200, promoter_len=100)
    assert len(ds) == 4 and list(ds.labels) == [1, 0, 1, 0]
    assert ds.cell_lines == ["HUVEC"]                          # from the 'HUVEC|chr1:...' name prefix
    assert decode(ds.enhancer[0]) == _genome_seq("1")[1400:1600]  # chr1 read from contig '1', centred
    # TargetFinder's own columns ride along in meta
    for column in ("enhancer_distance_to_promoter", "bin", "window_name", "enhancer_name", "promoter_name"):
        assert column in ds.meta.columns
    assert ds.meta["enhancer_distance_to_promoter"].iloc[0] == "12198"


def test_targetfinder_default_window_is_3000_2000_and_cell_line_argument_wins():
    ds = load(HUVEC, genome=GENOME, cell_line="HUVEC-custom")
    assert (ds.enhancer_len, ds.promoter_len) == (3000, 2000)
    assert ds.cell_lines == ["HUVEC-custom"]


def test_targetfinder_training_table_loads_and_keeps_features():
    path = TARGETFINDER / "HUVEC" / "output-ep" / "training.csv.gz"
    with gzip.open(path, "rt") as handle:
        header = handle.readline().strip().split(",")
    assert header[:17] == list(TARGETFINDER_COLUMNS)
    ds = load(path, genome=GENOME, enhancer_len=100, promoter_len=100)
    assert len(ds) == 4 and ds.cell_lines == ["HUVEC"] and "CTCF (enhancer)" in ds.meta.columns


def test_transepi_table_loads_without_header():
    ds = load(TRANSEPI, genome=GENOME, enhancer_len=100, promoter_len=100)
    assert len(ds) == 5                                   # two transcripts of one gene stay two pairs
    assert ds.cell_lines == ["NHEK"]                      # from 'chr1:...|NHEK|EH37E...'
    assert list(ds.labels) == [1, 0, 0, 1, 0]
    assert decode(ds.promoter[0]) == _genome_seq("1")[14950:15050]
    assert ds.meta["enhancer_distance_to_promoter"].iloc[0] == "13500.0"


def test_a_transepi_table_with_a_bad_first_label_names_it(tmp_path):
    """It was taken for a header line and the file read as an unrecognised format, naming no line or field."""
    lines = gzip.decompress(TRANSEPI.read_bytes()).decode().splitlines()
    path = tmp_path / "NHEK.tsv"
    path.write_text("\n".join(["2" + lines[0][1:], *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=r"NHEK.tsv: line 1, field 'label': '2' is not 0 or 1"):
        load(path, genome=GENOME, enhancer_len=100, promoter_len=100)


def test_bengi_pairs_load_with_annotations():
    ds = load(BENGI / "NHEK.HiC-Benchmark.v3.txt", genome=GENOME, ccres=BENGI / "hg19-cCREs.bed",
              tss=BENGI / "GENCODEv19-TSSs.bed", enhancer_len=100, promoter_len=100)
    assert len(ds) == 4 and list(ds.labels) == [1, 0, 1, 0]   # '1 ' with BENGI's trailing space
    assert ds.cell_lines == ["NHEK"]                          # from the file name
    assert list(ds.meta["cv_group"]) == ["cv-9", "cv-9", "cv-10", "cv-10"]
    # the gene has TSSs at 13869 and 17872; the one nearest the cCRE (1200-1550) is used, BENGI's rule
    assert ds.meta["promoter_start"].iloc[0] == 13869
    assert ds.meta["enhancer_distance_to_promoter"].iloc[0] == 13869 - 1550
    assert decode(ds.promoter[0]) == _genome_seq("1")[13819:13919]


def test_bed_annotations_exported_by_a_genome_browser_load(tmp_path):
    """A UCSC export starts with track/browser lines; they failed with a raw tokenizer message."""
    ccres = tmp_path / "cCREs.bed.gz"
    header = 'browser position chr1:1-20000\ntrack name="cCREs" description="ENCODE cCREs"\n'
    ccres.write_bytes(gzip.compress((header + (BENGI / "hg19-cCREs.bed").read_text()).encode()))
    ds = load(BENGI / "NHEK.HiC-Benchmark.v3.txt", genome=GENOME, ccres=ccres, tss=BENGI / "GENCODEv19-TSSs.bed",
              enhancer_len=100, promoter_len=100)
    assert list(ds.labels) == [1, 0, 1, 0] and ds.meta["promoter_start"].iloc[0] == 13869


def test_bengi_files_of_two_cell_lines_keep_their_shared_pairs(tmp_path):
    # BENGI's cell lines share cCRE-gene pairs (HeLa and NHEK both list EH37E0511410-ENSG00000270677.1):
    # each cell line's copy is a sample of its own, whatever its label there
    rows = (BENGI / "NHEK.HiC-Benchmark.v3.txt").read_text().splitlines()
    k562 = tmp_path / "K562.HiC-Benchmark.v3.txt"
    k562.write_text("\n".join([rows[0].replace("\t1 \t", "\t0 \t"), rows[1]]) + "\n")
    ds = load([BENGI / "NHEK.HiC-Benchmark.v3.txt", k562], genome=GENOME, ccres=BENGI / "hg19-cCREs.bed",
              tss=BENGI / "GENCODEv19-TSSs.bed", enhancer_len=100, promoter_len=100)
    assert len(ds) == 6 and ds.cell_lines == ["K562", "NHEK"]
    shared = ds.meta["enhancer_name"] == "EH37E0776604"
    assert sorted(zip(ds.meta.loc[shared, "cell_line"], ds.labels[shared])) == [("K562", 0), ("NHEK", 1)]


def test_bengi_promoter_is_the_genes_tss_on_the_enhancers_chromosome(tmp_path):
    # a gene with a TSS on another chromosome nearer in position (a PAR gene's chrY copy): never chosen
    tss = tmp_path / "tss.bed"
    tss.write_text((BENGI / "GENCODEv19-TSSs.bed").read_text()
                   + "chr2\t1600\t1600\tENST00000999999.1\t.\t+\tENSG00000185305.6\n")
    ds = load(BENGI / "NHEK.HiC-Benchmark.v3.txt", genome=GENOME, ccres=BENGI / "hg19-cCREs.bed", tss=tss,
              enhancer_len=100, promoter_len=100)
    assert ds.meta["promoter_start"].iloc[0] == 13869 and ds.meta["promoter_chrom"].iloc[0] == "chr1"


@pytest.mark.parametrize("n_lines", [1, 2])
def test_a_bengi_file_with_an_extra_field_names_it(tmp_path, n_lines):
    """A one-line file read "the table has no rows" (its line taken for a header); longer ones missed columns."""
    rows = (BENGI / "NHEK.HiC-Benchmark.v3.txt").read_text().splitlines()[:n_lines]
    path = tmp_path / "NHEK.HiC-Benchmark.v3.txt"
    path.write_text("".join(f"{row}\textra\n" for row in rows))
    with pytest.raises(DataError, match=r"NHEK.HiC-Benchmark.v3.txt: line 1 has 5 tab-separated fields; a BENGI "
                                        r"pair file has 4: ccre, gene, label, cv_group"):
        load(path, genome=GENOME, ccres=BENGI / "hg19-cCREs.bed", tss=BENGI / "GENCODEv19-TSSs.bed")


def test_bengi_without_annotations_says_what_it_needs():
    with pytest.raises(DataError, match="ccres=.*tss="):
        load(BENGI / "NHEK.HiC-Benchmark.v3.txt", genome=GENOME)


def test_fasta_triplet_folder_keeps_working():
    ds = load(FIXTURES / "fasta")
    assert len(ds) == 3 and ds.cell_lines == ["GM12878"] and list(ds.meta["chrom"]) == ["chr1"] * 3


def test_fasta_folder_pairs_each_enhancer_file_with_its_own_promoter_file(tmp_path):
    # EPIANN-style folders hold a training and a test triplet per cell line; any directory order
    records = {"": ("chr1:1000-4000", "chr1:14000-16000", "1"), "_test": ("chr2:100-400", "chr2:17000-19000", "0")}
    for tag, (enh, prom, label) in records.items():
        (tmp_path / f"K562_enhancer{tag}.fasta").write_text(f">{enh}\nACGTACGT\n")
        (tmp_path / f"K562_promoter{tag}.fasta").write_text(f">{prom}\nGGGGCCCC\n")
        (tmp_path / f"K562_label{tag}.txt").write_text(f"{label}\n")
    ds = load(tmp_path)
    pairs = sorted(zip(ds.meta["enhancer_id"], ds.meta["promoter_id"], ds.labels))
    assert pairs == [("chr1:1000-4000", "chr1:14000-16000", 1), ("chr2:100-400", "chr2:17000-19000", 0)]
    assert ds.cell_lines == ["K562"] and sorted(ds.meta["chrom"]) == ["chr1", "chr2"]


def test_a_triplet_loaded_by_file_takes_its_cell_line_from_the_name():
    ds = load(FIXTURES / "fasta" / "GM12878_enhancer.fa", promoter=FIXTURES / "fasta" / "GM12878_promoter.fa",
              labels=FIXTURES / "fasta" / "GM12878_label.txt")
    assert ds.cell_lines == ["GM12878"]


def test_a_replaced_genome_is_read_afresh_not_through_its_old_index(tmp_path):
    genome = tmp_path / "genome.fa"
    shutil.copy(GENOME, genome)
    load(HUVEC, genome=genome, enhancer_len=200, promoter_len=100)  # writes genome.fa.fai
    contigs = GENOME.read_text().split(">")[1:]
    genome.write_text("".join(">" + block for block in [contigs[1], contigs[0], *contigs[2:]]))  # contigs reordered
    fai = genome.with_suffix(".fa.fai")
    __import__("os").utime(fai, (fai.stat().st_mtime - 60,) * 2)  # the index predates the new FASTA
    ds = load(HUVEC, genome=genome, enhancer_len=200, promoter_len=100)
    assert decode(ds.enhancer[0]) == _genome_seq("1")[1400:1600]
    # the same genome wrapped at other widths and older than its index (unpacked from an archive): the stale index
    # is named, not only the line lengths
    sequences = {block.split("\n", 1)[0]: block.split("\n", 1)[1].replace("\n", "") for block in contigs}
    genome.write_text("".join(f">{name}\n" + "\n".join(seq[i:i + 37] for i in range(0, len(seq), 37)) + "\n"
                              for name, seq in sequences.items()))
    __import__("os").utime(genome, (fai.stat().st_mtime - 60,) * 2)
    with pytest.raises(DataError, match=r"its index genome.fa.fai was made for another file .* delete the .fai"):
        load(HUVEC, genome=genome, enhancer_len=200, promoter_len=100)


def test_chromosome_names_are_one_spelling_so_a_chromosome_split_cannot_leak(tmp_path):
    # TargetFinder writes chr1; a table from elsewhere writes 1: both are chromosome 1
    other = _rewrite(tmp_path, NHEK, lambda f: f.assign(enhancer_chrom=f["enhancer_chrom"].str.replace("chr", ""),
                                                          promoter_chrom=f["promoter_chrom"].str.replace("chr", "")))
    ds = load([HUVEC, other], genome=GENOME, enhancer_len=100, promoter_len=100)
    assert set(ds.meta["chrom"]) <= {"chr1", "chr2", "chrX"}
    s = split(ds, by="chrom", seed=0)
    for part in (s.train, s.val):
        assert not set(ds.meta["chrom"].iloc[part]) & set(ds.meta["chrom"].iloc[s.test])


def _rewrite(tmp_path, source, transform, name="pairs.csv"):
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    path = tmp_path / name
    transform(frame).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("change, fragments", [
    (lambda f: f.rename(columns={"enhancer_start": "enh_start"}), ["missing column", "'enhancer_start'", "found"]),
    (lambda f: f.drop(columns=["label"]), ["missing column", "'label'"]),
    (lambda f: f.rename(columns={"enhancer_chrom": "chrom1"}), ["unrecognised format", "'chrom1'", "transepi",
                                                                 "bengi", "fasta", "coordinates"]),
], ids=["renamed", "missing", "unrecognised"])
def test_changed_targetfinder_header_gets_one_line_error(tmp_path, change, fragments):
    with pytest.raises(DataError) as info:
        load(_rewrite(tmp_path, HUVEC, change), genome=GENOME)
    message = str(info.value)
    assert "\n" not in message and "pairs.csv" in message
    for fragment in fragments:
        assert fragment in message


def test_unrecognised_format_lists_every_known_format(tmp_path):
    path = tmp_path / "mystery.csv"
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load(path)
    assert "\n" not in str(info.value) and "['a', 'b']" in str(info.value)
    assert all(name in str(info.value) for name in FORMATS)


@pytest.mark.parametrize("change, fragments", [
    (lambda f: f.assign(enhancer_chrom=["chr1", "chr7", "chr2", "chr2"]), ["line 3", "'enhancer_chrom'", "'chr7'"]),
    (lambda f: f.assign(promoter_end=["14600", "14600", "99999", "13200"]), ["line 4", "'promoter_end'",
                                                                             "beyond the end of 2"]),
    (lambda f: f.assign(enhancer_name=["chr1:1-2"] * 4), ["line 2", "'enhancer_name'", "cell_line="]),
], ids=["missing contig", "past contig end", "no cell line"])
def test_bad_coordinates_name_the_row(tmp_path, change, fragments):
    with pytest.raises(DataError) as info:
        load(_rewrite(tmp_path, HUVEC, change), genome=GENOME)
    assert "\n" not in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_cell_line_hold_out_over_two_files_keeps_held_out_pairs_out_of_training():
    ds = load([HUVEC, NHEK], genome=GENOME, enhancer_len=100, promoter_len=100)
    assert ds.cell_lines == ["HUVEC", "NHEK"] and len(ds) == 8
    parts = split(ds, by="cell_line", test="NHEK", val_fraction=0.0)
    cells = ds.meta["cell_line"].to_numpy()
    assert set(cells[parts.test]) == {"NHEK"} and len(parts.test) == 4
    assert "NHEK" not in set(cells[np.concatenate([parts.train, parts.val])])
    assert set(ds.meta["pair_id"].iloc[parts.train]).isdisjoint(ds.meta["pair_id"].iloc[parts.test])


def test_folder_of_tables_loads_every_table(tmp_path):
    shutil.copy(HUVEC, tmp_path / "HUVEC.pairs.csv")
    shutil.copy(NHEK, tmp_path / "NHEK.pairs.csv")
    (tmp_path / "README.txt").write_text("TargetFinder pairs of two cell lines, downloaded 2026\n")  # blocked the load
    ds = load(tmp_path, genome=GENOME, enhancer_len=50, promoter_len=50)
    assert ds.cell_lines == ["HUVEC", "NHEK"] and len(ds) == 8


def test_report_and_sweep_commands_pass_data_genome_and_split_to_the_sweep(monkeypatch, tmp_path):
    import cbat.report
    from cbat.cli import main

    seen = {}

    def build_report(out, params, **kwargs):  # the report itself is tested elsewhere; here only what it is given
        seen["params"] = params
        return []

    monkeypatch.setattr(cbat.report, "build_report", build_report)
    monkeypatch.chdir(FIXTURES)   # relative paths become absolute: notebooks run inside the report folder
    assert main(["report", "--data", "targetfinder/HUVEC/output-ep/pairs.csv", "targetfinder/NHEK/output-ep/pairs.csv",
                 "--genome", "genome.fa", "--split", "cell_line:NHEK", "--variants", "baseline", "--seeds", "0",
                 "--out", str(tmp_path)]) == 0
    spec = cbat.report.sweep_spec(seen["params"])
    assert spec.data == {"path": [str(HUVEC), str(NHEK)], "genome": str(GENOME)}   # no synthetic task mixed in
    assert spec.splits == ["cell_line:NHEK"] and spec.runs()[0]["task"] == "pairs"
    assert main(["report", "--genome", str(GENOME), "--out", str(tmp_path)]) == 2      # a genome needs data files

    from cbat.cli import build_parser
    from cbat.commands.train import data_spec
    args = build_parser().parse_args(["sweep", "--data", str(HUVEC), str(NHEK), "--genome", str(GENOME),
                                      "--out", str(tmp_path)])
    assert data_spec(args) == {"path": [str(HUVEC), str(NHEK)], "genome": str(GENOME)}


def _coordinates(path, rows):
    header = "enhancer_chrom,enhancer_start,enhancer_end,promoter_chrom,promoter_start,promoter_end,label,cell_line\n"
    path.write_text(header + "".join(row + "\n" for row in rows))
    return path


def test_one_chromosome_in_any_spelling_is_one_locus_for_ids_and_distances(tmp_path):
    """A space after a comma made every pair 'trans' (distance baseline all 0); 'chr1' and '1' kept one pair twice."""
    from cbat.data.distance import genomic_distance

    spaced = _coordinates(tmp_path / "spaced.csv", ["chr1, 1000, 1200, chr1, 3000, 3100, 1, GM12878",
                                                    "chr2, 100, 300, chr2, 900, 1000, 0, GM12878"])
    ds = load(spaced, genome=GENOME, enhancer_len=50, promoter_len=50)
    assert list(genomic_distance(ds)) == [1950.0, 750.0]
    again = _coordinates(tmp_path / "again.csv", ["1,1000,1200,1,3000,3100,1,GM12878"])
    both = load([spaced, again], genome=GENOME, enhancer_len=50, promoter_len=50)
    assert len(both) == 2 and both.meta["pair_id"][0] == "GM12878|chr1:1000-1200|chr1:3000-3100"
    with pytest.warns(UserWarning, match=r"trans.csv: 1 pair\(s\) have the enhancer and the promoter on different "
                                         r"chromosomes \(first: line 2\)"):
        load(_coordinates(tmp_path / "trans.csv", ["chr1,1000,1200,chrX,100,200,1,GM12878"]), genome=GENOME,
             enhancer_len=50, promoter_len=50)


def test_fasta_folders_take_every_triplet_or_name_the_files_none_takes(tmp_path):
    """A folder silently dropped 'K562.enhancer.fa' and '..._enhancer_test_rep1.fa' triplets; headers '1:0-300'
    and 'chr1:0-300' of one element were two pairs."""
    def triplet(stem, sep, tag, enh, label):
        (tmp_path / f"{stem}{sep}enhancer{tag}.fa").write_text(f">{enh}\nACGTACGT\n")
        (tmp_path / f"{stem}{sep}promoter{tag}.fa").write_text(">chr1:5000-5300\nGGGGCCCC\n")
        (tmp_path / f"{stem}{sep}label{tag}.txt").write_text(f"{label}\n")
    triplet("GM12878", "_", "", "chr1:0-300", 1)
    triplet("GM12878", "_", "_test_rep1", "1:0-300", 1)  # the same pair in another spelling: one pair
    triplet("K562", ".", "", "chr2:0-300", 0)
    ds = load(tmp_path)
    assert sorted(ds.meta["pair_id"]) == ["GM12878|chr1:0-300|chr1:5000-5300", "K562|chr2:0-300|chr1:5000-5300"]
    (tmp_path / "notes.fa").write_text(">x\nACGT\n")
    with pytest.raises(DataError, match=r"notes.fa: no triplet takes these FASTA files"):
        load(tmp_path)

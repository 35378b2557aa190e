"""What a reader sees: the thesis table's bold cells in LaTeX and HTML, the HTML pages, run cards,
the thesis-gap sentences, the report's defaults and captions, and each figure's plotted data
(read back from the figure's artists, compared with means computed here with pandas)."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal
from html.parser import HTMLParser


import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from conftest import ROOT, base_config
from dmbn import plots
from dmbn.config import REPORT_DEFAULTS, ConfigError, check
from dmbn.names import REGIMES, regime_label
from dmbn.report import DATASET_ITEMS, FIGURES, RUN_FIGURES, STUDY_ITEMS, item_label, page
from dmbn.runs import read_cards
from dmbn.tables import html, latex, styled, summary, thesis_gaps, thesis_styler, thesis_table

METRIC_HEADERS = ["Accuracy", "Sensitivity", "Specificity", "F1"]


class _Cells(HTMLParser):
    """Rows of an HTML table: (row header texts, [(cell text, classes)])."""

    def __init__(self):
        super().__init__()
        self.rows, self.caption, self._cell, self._in_caption = [], "", None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append(([], []))
        elif tag in ("td", "th") and self.rows:
            self._cell = [tag, "", attrs.get("class", "").split()]
        elif tag == "caption":
            self._in_caption = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell:
            kind, text, classes = self._cell
            (self.rows[-1][0] if kind == "th" else self.rows[-1][1]).append((text.strip(), classes))
            self._cell = None
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        elif self._in_caption:
            self.caption += data


def parse(text: str) -> _Cells:
    parser = _Cells()
    parser.feed(text)
    return parser


def summary_rows(seed: int = 0) -> pd.DataFrame:
    """A hand-made summary: two regimes, four variants, random means (one tie for the best)."""
    rng = np.random.default_rng(seed)
    rows = []
    for regime in ("mini", "full"):
        for variant in ("dmbn", "static-0.1", "bn-bfn", "static-0.5"):
            row = {"dataset": "d", "regime": regime, "variant": variant, "seeds": int(rng.integers(2, 11))}
            for metric in ("accuracy", "sensitivity", "specificity", "f1"):
                row[f"{metric}_mean"] = round(float(rng.uniform(0.5, 1.0)), 6)
                row[f"{metric}_std"] = round(float(rng.uniform(0.0, 0.05)), 6)
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.loc[(frame.regime == "mini") & (frame.variant == "bn-bfn"), "f1_mean"] = \
        frame[frame.regime == "mini"].f1_mean.max()  # a tie: both best
    return frame


def best_cells(frame: pd.DataFrame) -> set[tuple[str, str, str]]:
    """(regime, variant, metric) of every mean that prints (3 places) as its regime's maximum,
    computed here with Decimal on the exact binary value."""
    out = set()
    for metric, header in zip(("accuracy", "sensitivity", "specificity", "f1"), METRIC_HEADERS):
        for regime, rows in frame.groupby("regime"):
            printed = rows[f"{metric}_mean"].map(lambda m: Decimal(m).quantize(Decimal("0.001"), ROUND_HALF_EVEN))
            out |= {(regime, v, header) for v in rows[printed == printed.max()].variant}
    return out


def test_thesis_table_bolds_the_best_mean_and_only_it_in_latex_and_html():
    frame = summary_rows()
    expected = best_cells(frame)
    # 2 regimes x 4 metrics, plus the tie made by hand, plus one at the printed 3 places: full-batch
    # sensitivity 0.944744 (DMBN) and 0.945137 (static 0.1) both print 0.945
    assert len(expected) == 10
    label_of = {"dmbn": "DMBN", "bn-bfn": "BN-BFN", "static-0.1": "Static BN (β = 0.1) (default)",
                "static-0.5": "Static BN (β = 0.5)"}
    regime_of = {regime_label(r): r for r in REGIMES}

    table = parse(html(thesis_styler(frame, 3), 3, "a caption"))
    bold, regime = set(), None
    body = [(heads, cells) for heads, cells in table.rows if cells and len(cells) == 5]
    assert len(body) == 8
    for heads, cells in body:
        if len(heads) == 2:
            regime = regime_of[heads[0][0]]
        variant = {v: k for k, v in label_of.items()}[heads[-1][0]]
        row = frame[(frame.regime == regime) & (frame.variant == variant)].iloc[0]
        for (text, classes), header, metric in zip(cells, METRIC_HEADERS, ("accuracy", "sensitivity",
                                                                          "specificity", "f1")):
            assert text == f"{row[f'{metric}_mean']:.3f} ± {row[f'{metric}_std']:.3f}"
            if "best" in classes:
                bold.add((regime, variant, header))
        assert cells[-1][0] == str(row.seeds)  # n, never bold
    assert bold == expected
    assert table.caption.strip() == "a caption"
    assert "td.best" in html(thesis_styler(frame, 3), 3, "")  # the class is styled bold

    csv, tex = thesis_table(frame, 3)
    assert list(csv.regime) == ["full"] * 4 + ["mini"] * 4  # REGIMES order: full batch first
    assert list(csv.variant[:4]) == ["static-0.1", "static-0.5", "dmbn", "bn-bfn"]
    lines = [line for line in tex.splitlines() if "$\\pm$" in line]
    bold_tex = set()
    regime = None
    for line in lines:
        cells = [c.strip() for c in line.rstrip("\\ ").split("&")]
        if cells[0]:
            regime = regime_of[re.sub(r"\\multirow\[t\]\{\d+\}\{\*\}\{(.*)\}", r"\1", cells[0])]
        variant = {"DMBN": "dmbn", "BN-BFN": "bn-bfn", "Static BN ($\\beta = 0.1$) (default)": "static-0.1",
                   "Static BN ($\\beta = 0.5$)": "static-0.5"}[cells[1]]
        bold_tex |= {(regime, variant, h) for c, h in zip(cells[2:], METRIC_HEADERS) if c.startswith("\\textbf{")}
    assert bold_tex == expected


def test_plain_tables_render_every_row_in_html_and_escape_latex():
    frame = pd.DataFrame({"mean_difference": [0.12345, -0.5], "seeds": [3, 2], "comparison": ["a - b", "c_d"]})
    table = parse(html(styled(frame), 2, "caption"))
    cells = [[text for text, _ in row[1]] for row in table.rows if row[1]]
    assert cells == [["0.12", "3", "a - b"], ["-0.50", "2", "c_d"]]
    tex = latex(styled(frame), 2)
    assert "mean\\_difference" in tex and "c\\_d" in tex and "\\toprule" in tex


def test_page_is_a_standalone_document_with_notes():
    text = page("t <x>", ["<table></table>"], ["note & more"])
    assert text.startswith("<!DOCTYPE html>") and "<h1>t &lt;x&gt;</h1>" in text
    assert '<p class="note">note &amp; more</p>' in text


def test_thesis_gaps_name_missing_data_sets_and_regimes():
    metrics = pd.DataFrame({"dataset": ["digits", "mnist", "mnist"], "regime": ["mini", "mini", "full-heldout"]})
    paper = pd.DataFrame({"dataset": ["MNIST", "MNIST"], "regime": ["mini", "full"]})
    notes = thesis_gaps(metrics, paper, {"digits": "digits", "mnist": "MNIST"})
    assert len(notes) == 2
    assert "digits" in notes[0] and "no results" in notes[0]
    assert regime_label("full-heldout") in notes[1] and "mnist" in notes[1]
    assert thesis_gaps(metrics[metrics.regime == "mini"].iloc[1:], paper, {"mnist": "MNIST"}) == []


def card(commits: list[str], **extra) -> dict:
    base = dict(dmbn_version="0.1.0", commit=commits[-1], commit_dirty=False, python="3.11.2",
                torch="2.5.0", torchvision="0.20.0", snakemake="9.27.1", device="cpu", threads=1,
                hostname="h", started="2026-01-01T00:00:00Z", finished="2026-01-01T00:10:00Z",
                wall_seconds=600.0, epochs_run=len(commits) * 2, resumed_from_epoch=2 if len(commits) > 1 else 0,
                segments=[{"commit": c, "started": "s", "finished": "f", "first_epoch": 2 * i + 1,
                           "last_epoch": 2 * i + 2} for i, c in enumerate(commits)])
    return {**base, **extra}


def test_run_cards_one_row_per_run_labels_first(tmp_path):
    labels = [dict(dataset="digits", regime="mini", arch="mlp", seed=s, member="bank") for s in (1, 2)]
    cards = [card(["aaa"]), card(["aaa", "bbb", "aaa"], threads=4)]
    paths = []
    for i, c in enumerate(cards):
        paths.append(tmp_path / f"card{i}.json")
        paths[-1].write_text(json.dumps(c))
    frame = read_cards(paths, labels)
    assert list(frame.columns[:5]) == ["dataset", "regime", "arch", "seed", "member"]
    assert frame.seed.tolist() == [1, 2] and frame.threads.tolist() == [1, 4]
    assert frame.segments.tolist() == [1, 3]
    assert frame.commits.tolist() == ["aaa", "aaa bbb"]  # distinct, in order of first use
    assert frame.resumed_from_epoch.tolist() == [0, 2]
    assert "segment" not in " ".join(str(v) for v in frame.iloc[0])  # flattened, no dicts


def test_run_cards_reject_a_card_without_a_field(tmp_path):
    broken = card(["aaa"])
    del broken["wall_seconds"]
    path = tmp_path / "card.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"card\.json breaks the run card's schema: .*'wall_seconds' is a required property"):
        read_cards([path], [dict(dataset="d", regime="mini", arch="mlp", seed=1, member="bank")])
    path.write_text("{not json")
    with pytest.raises(ValueError, match="card.json is not a run card"):
        read_cards([path], [dict(dataset="d", regime="mini", arch="mlp", seed=1, member="bank")])


# -- report defaults, items and captions ------------------------------------------------------------

def shallow_config(report: dict) -> dict:
    config = base_config()
    config["studies"] = {"tiny": {"datasets": ["digits"], "regimes": ["mini"], "archs": ["mlp"],
                                  "seeds": [1], "train": {"depth": 4}}}
    config["default_study"] = "tiny"
    config["report"] = report
    return config


def test_report_defaults_are_checked_against_the_study_network():
    assert REPORT_DEFAULTS["beta_layer"] > 4  # so the defaults below cannot fit a depth-4 MLP
    with pytest.raises(ConfigError, match=r"^report\.beta_layer: layer 18 does not exist in studies\.tiny's 'mlp'"):
        check(shallow_config({}))
    with pytest.raises(ConfigError, match=r"^report\.esm_layers: layer 5 does not exist"):
        check(shallow_config({"beta_layer": 1, "esm_layers": [1, 5]}))
    with pytest.raises(ConfigError, match=r"^report\.esm_layers: layer 19 does not exist"):
        check(shallow_config({"beta_layer": 4}))  # esm_layers from the defaults
    check(shallow_config({"beta_layer": 4, "esm_layers": [1, 4]}))


def test_every_report_item_has_a_caption_and_the_thesis_order():
    rules = (ROOT / "workflow/rules/report.smk").read_text()
    for name in FIGURES | RUN_FIGURES:
        assert (ROOT / f"workflow/report/{name}.rst").read_text().strip(), name
    for caption in re.findall(r'caption="\.\./report/([a-z_]+)\.rst"', rules):
        assert (ROOT / f"workflow/report/{caption}.rst").read_text().strip(), caption
    assert rules.count("report(") == len(re.findall(r'caption=f?"\.\./report/', rules))  # each has one
    labels = [item_label(name) for name in DATASET_ITEMS]
    assert labels == sorted(labels)  # the report sorts by label: the thesis's order survives
    assert labels[0].startswith("01. Table") and labels[1].startswith("02. Fig. 5.1") \
        and labels[3].startswith("04. Fig. 5.3")
    assert [item_label(n) for n in STUDY_ITEMS] == sorted(item_label(n) for n in STUDY_ITEMS)


# -- figures: the data they plot ---------------------------------------------------------------------

def esm_frame() -> pd.DataFrame:
    """ESM of two seeds, three epochs, four BN layers, four estimators (recalibrated: zeros)."""
    rng = np.random.default_rng(1)
    rows = []
    for arch, layers in (("mlp", range(1, 5)), ("mlp-bnbfn", range(1, 3))):
        for seed in (1, 2):
            for epoch in (1, 2, 3):
                for layer in layers:
                    for estimator in ("static-0.1", "static-0.9", "dmbn", "recalibrated"):
                        mu = 0.0 if estimator == "recalibrated" else float(rng.uniform(1e-3, 1))
                        rows.append(dict(arch=arch, seed=seed, epoch=epoch, layer=layer,
                                         estimator=estimator, esm_mu=mu, esm_sigma=mu / 2))
    return pd.DataFrame(rows)


def layers_frame(twin: bool = True) -> pd.DataFrame:
    """mlp: BN layers 1-4 at hidden layers 1-4; BN-BFN: BN at hidden layers 1 and 3."""
    rows = [dict(arch="mlp", seed=1, layer=k, name=f"bn{k}", channels=8, position=k) for k in range(1, 5)]
    if twin:
        rows += [dict(arch="mlp-bnbfn", seed=1, layer=k, name=f"bn{k}", channels=8, position=2 * k - 1)
                 for k in (1, 2)]
    return pd.DataFrame(rows)


def lines_by_label(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
            for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_nearest_batchnorm_prefers_the_earlier_layer_on_a_tie():
    layers = layers_frame()
    assert plots.nearest_batchnorm(layers, "mlp-bnbfn", 2) == 1  # positions 1 and 3 are both 1 away
    assert plots.nearest_batchnorm(layers, "mlp-bnbfn", 3) == 2
    assert plots.nearest_batchnorm(layers, "mlp-bnbfn", 4) == 2  # position 3 is nearer than 1
    assert plots.nearest_batchnorm(layers, "mlp", 3) == 3
    assert plots.nearest_batchnorm(layers, "resnet50", 3) is None


def test_fig_5_2_plots_the_seed_means_of_both_estimators():
    esm = esm_frame()
    fig = plots.esm_dmbn_vs_default(esm, "mlp", [2, 4], "digits · Mini-batch · mlp")
    for ax, layer in zip(fig.axes, (2, 4)):
        lines = lines_by_label(ax)
        for estimator, text in (("dmbn", "DMBN"), ("static-0.1", "Static BN ($\\beta = 0.1$) (default)")):
            rows = esm[(esm.arch == "mlp") & (esm.estimator == estimator) & (esm.layer == layer)]
            expected = rows.groupby("epoch").esm_mu.mean()
            x, y = lines[text]
            np.testing.assert_array_equal(x, expected.index.to_numpy())
            np.testing.assert_allclose(y, expected.to_numpy())
        assert ax.get_title() == f"BN layer {layer}"
    assert fig._suptitle.get_text() == "digits · Mini-batch · mlp"


def test_fig_5_3_titles_and_legends_name_the_same_layers():
    esm, layers = esm_frame(), layers_frame()
    fig = plots.esm_dmbn_vs_bnbfn(esm, layers, "mlp", [2, 3])
    first, second = fig.axes
    assert first.get_title() == "hidden layer 2 (BN-BFN: nearest BN, hidden layer 1)"
    lines = lines_by_label(first)
    assert set(lines) == {"DMBN: hidden layer 2 (BN layer 2)", "BN-BFN: hidden layer 1 (BN layer 1)"}
    twin = esm[(esm.arch == "mlp-bnbfn") & (esm.estimator == "static-0.1") & (esm.layer == 1)]
    np.testing.assert_allclose(lines["BN-BFN: hidden layer 1 (BN layer 1)"][1],
                               twin.groupby("epoch").esm_mu.mean().to_numpy())
    assert second.get_title() == "hidden layer 3"  # BN in both networks there
    assert set(lines_by_label(second)) == {"DMBN: hidden layer 3 (BN layer 3)",
                                           "BN-BFN: hidden layer 3 (BN layer 2)"}


def test_fig_5_3_without_bnbfn_runs_says_so():
    esm, layers = esm_frame(), layers_frame(twin=False)
    fig = plots.esm_dmbn_vs_bnbfn(esm[esm.arch == "mlp"], layers, "mlp", [2])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["this study has no BN-BFN runs to compare with"]
    assert not fig.axes[0].get_lines()


def test_esm_vs_depth_draws_every_estimator_and_keeps_zero_off_the_log_axis():
    esm = esm_frame()
    fig = plots.esm_vs_depth(esm, "mlp", "digits · Mini-batch · mlp")
    ax = fig.axes[0]
    last = esm[(esm.arch == "mlp") & (esm.epoch == 3)]
    lines = lines_by_label(ax)
    for estimator in ("static-0.1", "static-0.9", "dmbn"):
        x, y = lines[plots.label(estimator)]
        expected = last[last.estimator == estimator].groupby("layer").esm_mu.mean()
        np.testing.assert_array_equal(x, [1, 2, 3, 4])
        np.testing.assert_allclose(y, expected.to_numpy())
    floor = [line for line in ax.get_lines() if "axis floor" in line.get_label()]
    assert len(floor) == 1 and np.all(floor[0].get_ydata() == 0)
    assert floor[0].get_transform() != ax.transData  # axes coordinates: the floor, not y = 0 in data
    low, high = ax.get_ylim()
    assert low > last[last.esm_mu > 0].esm_mu.min() / 10  # no decades added for the zeros
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert "digits" in ax.get_title() and "Mini-batch" in ax.get_title() and "mlp" in ax.get_title()
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # outside


def test_every_estimator_has_its_own_colour_and_line_style():
    names = [f"static-{b:g}" for b in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)] + \
        ["dmbn", "bn-bfn", "precise", "cma", "recalibrated"]
    looks = [(to_hex(plots.style(n)["color"]), str(plots.style(n)["linestyle"]), plots.style(n)["marker"])
             for n in names]
    assert len({c for c, _, _ in looks}) == len(names)
    assert len({m for _, _, m in looks}) == len(names)
    others = looks[9:]
    assert len({s for _, s, _ in others}) == len(others) and all(s != "-" for _, s, _ in others)
    # every registered kind (per-β kinds at one β) has a look of its own, none the unknown grey
    from dmbn.names import ESTIMATORS
    every = names + [f"{k}-0.5" if v.per_beta else k for k, v in ESTIMATORS.items() if k not in names and k != "static"]
    looks = [(to_hex(plots.style(n)["color"]), str(plots.style(n)["linestyle"]), plots.style(n)["marker"])
             for n in every]
    assert len({c for c, _, _ in looks}) == len(every) and to_hex("grey") not in {c for c, _, _ in looks}
    assert len({(s, m) for _, s, m in looks[9:]}) == len(every) - 9
    fig = plots.esm_vs_depth(esm_frame(), "mlp")
    drawn = {line.get_label(): to_hex(line.get_color()) for line in fig.axes[0].get_lines()}
    assert drawn[plots.label("dmbn")] == to_hex(plots.style("dmbn")["color"])  # the registry's look


def test_accuracy_vs_beta_plots_the_static_means():
    rows = []
    rng = np.random.default_rng(2)
    for seed in (1, 2, 3):
        for estimator in ("static-0.1", "static-0.5", "dmbn"):
            rows.append(dict(dataset="d", regime="mini", arch="mlp", seed=seed, estimator=estimator,
                             accuracy=rng.uniform(), sensitivity=0, specificity=0, f1=0))
    metrics = pd.DataFrame(rows)
    fig = plots.accuracy_vs_beta(metrics, "mlp", "t")
    ax, right = fig.axes
    static = metrics[metrics.estimator != "dmbn"].groupby("estimator").accuracy.mean()
    x, y = (np.asarray(v, float) for v in ax.get_lines()[0].get_data())
    np.testing.assert_allclose(x, [0.1, 0.5])
    np.testing.assert_allclose(y, static.to_numpy())
    # DMBN is a point of its own on the right, named on that axis
    (dmbn,) = [c for c in right.containers if c.get_label() == "DMBN (mean ± std)"]
    assert dmbn.lines[0].get_ydata()[0] == pytest.approx(metrics[metrics.estimator == "dmbn"].accuracy.mean())
    assert [t.get_text() for t in right.get_xticklabels()] == ["DMBN"]


def history_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = [dict(seed=seed, epoch=epoch, train_loss=rng.uniform(0, 2), train_accuracy=rng.uniform(),
                 **{f"esm_accuracy_{e}": rng.uniform() for e in ("static-0.1", "dmbn", "recalibrated")})
            for seed in (1, 2, 3) for epoch in (1, 2, 3, 4)]
    return pd.DataFrame(rows)


def test_training_curves_plot_seed_means_with_a_band():
    history = history_frame()
    fig = plots.training_curves(history, "digits · Mini-batch · mlp")
    loss, accuracy, esm_set = fig.axes[:3]
    by_epoch = history.groupby("epoch")
    for ax, column in ((loss, "train_loss"), (accuracy, "train_accuracy")):
        x, y = lines_by_label(ax)["mean over seeds"]
        np.testing.assert_array_equal(x, [1, 2, 3, 4])
        np.testing.assert_allclose(y, by_epoch[column].mean().to_numpy())
        band = ax.collections[0].get_paths()[0].vertices[:, 1]
        assert band.min() == pytest.approx(by_epoch[column].min().min())
        assert band.max() == pytest.approx(by_epoch[column].max().max())
    lines = lines_by_label(esm_set)
    assert set(lines) == {plots.label(e) for e in ("static-0.1", "dmbn", "recalibrated")}
    np.testing.assert_allclose(lines["DMBN"][1], by_epoch["esm_accuracy_dmbn"].mean().to_numpy())
    assert fig._suptitle.get_text() == "digits · Mini-batch · mlp"


def test_esm_layers_shows_the_chosen_estimators_seed_means():
    esm = esm_frame()
    esm = esm[esm.arch == "mlp"]
    fig = plots.esm_layers(esm, "dmbn", "t")
    grid = fig.axes[0].get_images()[0].get_array()
    expected = esm[esm.estimator == "dmbn"].groupby(["layer", "epoch"]).esm_mu.mean().unstack("epoch")
    np.testing.assert_allclose(np.asarray(grid), expected.to_numpy())
    zero = plots.esm_layers(esm, "recalibrated", "t")
    assert not zero.axes[0].get_images() and "ESM = 0" in zero.axes[0].texts[0].get_text()


def test_beta_star_axis_shows_the_whole_grid_from_001_to_1():
    """β* of 0.01 (a slow EMA) and 1 (the last batch) are drawn inside the axes, not cut off."""
    fig = plots.beta_star(pd.DataFrame({"seed": [1, 1], "epoch": [1, 2], "layer": [3, 3], "beta": [0.01, 1.0]}), 3)
    low, high = fig.axes[0].get_ylim()
    assert low <= 0.01 and high >= 1.0


def test_figure_page_embeds_the_png_with_its_caption_below(tmp_path):
    import base64

    from dmbn.report import write_figure_pages

    png = tmp_path / "beta_star.png"
    fig = plots.beta_star(pd.DataFrame({"seed": [1, 1], "epoch": [1, 2], "layer": [3, 3], "beta": [0.2, 0.4]}), 3)
    plots.save(fig, png, tmp_path / "beta_star.pdf", dpi=40)
    caption = tmp_path / "beta_star.rst"
    caption.write_text("Thesis Figure 5.1: ``β*`` per epoch.")
    out = tmp_path / "beta_star.html"
    write_figure_pages([str(png)], [str(out)], [str(caption)], "digits · Mini-batch · mlp")
    text = out.read_text()
    data = re.search(r'<figure><img src="data:image/png;base64,([^"]+)"', text).group(1)
    assert base64.b64decode(data) == png.read_bytes()
    figcaption = re.search(r"<figcaption>(.*)</figcaption>", text, re.S).group(1)
    assert "Thesis Figure 5.1:" in figcaption and "literal\">β*</span>" in figcaption  # rst rendered
    assert "<h1>Fig. 5.1: DMBN&#x27;s β* per epoch · digits · Mini-batch · mlp</h1>" in text


# -- the study page (results/<study>/index.html) --------------------------------------------------

def test_study_page_lays_out_item_pages_in_order_and_leaves_out_empty_tables(tmp_path):
    from dmbn.study_page import study_page
    from dmbn.tables import TABLE_ID

    table = html(styled(pd.DataFrame({"a": [1.0]})), 3, "a caption")
    empty = html(styled(pd.DataFrame({"a": []})), 3, "nothing")
    items = [page("first table", [table]), page("no rows", [empty], ["the thesis has no numbers"]),
             page("a figure", ['<figure><img src="data:image/png;base64,AA=="><figcaption>c</figcaption></figure>']),
             page("second table", [table])]
    out = study_page("s", items)
    headings = re.findall(r'<h2 id="(item-\d+)">(.*?)</h2>', out)
    assert headings == [("item-1", "first table"), ("item-2", "a figure"), ("item-3", "second table")]
    assert re.findall(r'<a href="#(item-\d+)">', out) == ["item-1", "item-2", "item-3"]  # the contents
    assert out.count('<div class="scroll"><table') == 2 and "no rows" not in out
    ids = re.findall(r'<table id="([^"]+)"', out)
    assert ids == [f"T_{TABLE_ID}-item-1", f"T_{TABLE_ID}-item-3"]  # one id per table on the page
    with pytest.raises(ValueError, match="not a dmbn item page"):
        study_page("s", ["<table></table>"])

"""A pre-registered efficacy protocol: what to run, and the one analysis
made of it once every run of its primary arms is there.

A protocol is a JSON file committed before any of its runs (the words
around it in a markdown file beside it, e.g. ``docs/efficacy/protocol.md``).
It fixes the data (the synthetic data's manifest fields), the split the
claims are made on, the schedule, the arms and their seeds, at most two
primary endpoints (a paired comparison of two arms on one metric each), the
family-wise level with Holm's correction over the primaries, and which
comparisons and columns are exploratory or manipulation checks.

``tools/benchmark_efficacy.py --protocol FILE`` runs it (each run's row is
written as JSON into the protocol's ``records`` folder, which is also the
cache a later session resumes from) and ``--report-only`` analyses it
(:func:`protocol_report`); the analysis refuses to run while a primary
arm lacks a run, so nothing is looked at early.

Keys of the JSON file: ``name``, ``question``, ``dataset`` (optional:
``kitti``, the default, or ``waymo``; it picks the configs, the data's
format and the metric columns), ``data`` (``root``,
``num_train``, ``num_val``, ``num_test``, ``seed``, ``scale``, optionally
``layout``: every key but ``root`` must equal the run's data manifest),
``split``, ``iters``,
``arms`` (variant -> seeds), ``primary`` (list of ``id``, ``variant``,
``reference``, ``metric``), ``alpha``, ``exploratory`` (list of
``[variant, reference]``), ``manipulation_checks`` (metric keys),
``records`` and ``report`` (paths relative to the repository), and
optionally ``reuse``: a list of ``{"records": FOLDER, "arms": [...]}``,
arms whose runs are an earlier protocol's committed records (the same
data, split and schedule), read from there by the analysis and never run
by this protocol (a follow-up protocol pairs its new arm with them).
"""
import json
import math
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .demo_report import format_table
from .efficacy import (COLUMNS_BY_DATASET, VARIANTS, aggregate,
                       paired_differences)

__all__ = ['ProtocolError', 'load_protocol', 'protocol_dataset',
           'protocol_columns', 'protocol_jobs', 'missing_runs',
           'load_records', 'protocol_records', 'reused_arms', 'holm',
           'paired_test', 'primary_results', 'protocol_report',
           'protocol_figure']

_REQUIRED = ('name', 'question', 'data', 'split', 'iters', 'arms',
             'primary', 'alpha', 'records', 'report')


def protocol_dataset(proto: Mapping) -> str:
    """The protocol's dataset: its ``dataset`` field, ``kitti`` without
    one."""
    return proto.get('dataset', 'kitti')


def protocol_columns(proto: Mapping) -> List[Tuple]:
    """The metric columns of the protocol's dataset
    (:data:`ddml.analysis.efficacy.COLUMNS_BY_DATASET`)."""
    return COLUMNS_BY_DATASET[protocol_dataset(proto)]


def _column_keys(proto: Mapping) -> Dict[str, Tuple]:
    return {c[1]: c for c in protocol_columns(proto)}


class ProtocolError(ValueError):
    """A protocol file that cannot be run as written, or an analysis
    asked for before the protocol's runs are complete."""


def load_protocol(path: str) -> Dict:
    """Read and check a protocol file.

    Args:
        path (str): The JSON file.

    Returns:
        dict: The protocol, with ``path`` added.

    Raises:
        ProtocolError: Naming the file and the field that is wrong.
    """
    try:
        with open(path) as f:
            proto = json.load(f, object_pairs_hook=OrderedDict)
    except OSError as err:
        raise ProtocolError(f'{path}: cannot read the protocol ({err})')
    except ValueError as err:
        raise ProtocolError(f'{path}: not valid JSON ({err})')

    def bad(field: str, why: str) -> ProtocolError:
        return ProtocolError(f'{path}: field {field!r} {why}')

    for key in _REQUIRED:
        if key not in proto:
            raise bad(key, 'is missing')
    if protocol_dataset(proto) not in COLUMNS_BY_DATASET:
        raise bad('dataset', f'is {proto["dataset"]!r}; choose from '
                  f'{list(COLUMNS_BY_DATASET)} (or leave it out: kitti)')
    column_keys = _column_keys(proto)
    for variant, seeds in proto['arms'].items():
        if variant not in VARIANTS:
            raise bad(f'arms.{variant}',
                      f'is not a variant; choose from {list(VARIANTS)}')
        if not seeds or not all(isinstance(s, int) for s in seeds) or \
                len(set(seeds)) != len(seeds):
            raise bad(f'arms.{variant}', 'must list distinct integer seeds')
    if not 1 <= len(proto['primary']) <= 2:
        raise bad('primary', 'must hold one or two endpoints')
    for k, ep in enumerate(proto['primary']):
        for key in ('id', 'variant', 'reference', 'metric'):
            if key not in ep:
                raise bad(f'primary[{k}].{key}', 'is missing')
        for key in ('variant', 'reference'):
            if ep[key] not in proto['arms']:
                raise bad(f'primary[{k}].{key}',
                          f'names {ep[key]!r}, which is not an arm')
        if ep['metric'] not in column_keys:
            raise bad(f'primary[{k}].metric',
                      f'{ep["metric"]!r} is not a column of the '
                      f'{protocol_dataset(proto)} benchmark; choose from '
                      f'{sorted(column_keys)}')
    for k, pair in enumerate(proto.get('exploratory', [])):
        if len(pair) != 2 or any(v not in proto['arms'] for v in pair):
            raise bad(f'exploratory[{k}]',
                      'must be [variant, reference], both arms')
    if not 0 < float(proto['alpha']) < 1:
        raise bad('alpha', 'must lie in (0, 1)')
    reused = []
    for k, entry in enumerate(proto.get('reuse', [])):
        if not isinstance(entry, Mapping) or \
                not isinstance(entry.get('records'), str) or \
                not entry.get('arms'):
            raise bad(f'reuse[{k}]', 'must be {"records": FOLDER, '
                      '"arms": [ARM, ...]}')
        for arm in entry['arms']:
            if arm not in proto['arms']:
                raise bad(f'reuse[{k}].arms',
                          f'names {arm!r}, which is not an arm')
            if arm in reused:
                raise bad(f'reuse[{k}].arms', f'names {arm!r} twice')
            reused.append(arm)
    if len(reused) == len(proto['arms']):
        raise bad('reuse', 'covers every arm; a protocol runs at least one')
    proto['path'] = path
    return proto


def reused_arms(proto: Mapping) -> Dict[str, str]:
    """Arm -> records folder of the arms the protocol reads from an
    earlier protocol's records (its ``reuse`` field)."""
    return OrderedDict((arm, entry['records'])
                       for entry in proto.get('reuse', [])
                       for arm in entry['arms'])


def protocol_jobs(proto: Mapping,
                  variants: Optional[Sequence[str]] = None,
                  reused: bool = False) -> List[Tuple[str, int]]:
    """The protocol's (variant, seed) runs, seed-major (each seed's arms
    finish together, so pairs complete early), primary arms first.

    Args:
        proto (Mapping): A protocol (:func:`load_protocol`).
        variants (Sequence[str], optional): Only these arms.
        reused (bool): Include the arms it reads from an earlier
            protocol's records (:func:`reused_arms`), which it never runs.
            Defaults to False: the runs to train.

    Returns:
        list[tuple[str, int]]: The runs in order.
    """
    arms = proto['arms']
    elsewhere = reused_arms(proto)
    if variants is not None:
        unknown = [v for v in variants if v not in arms]
        if unknown:
            raise ProtocolError(
                f'{proto.get("path", "protocol")}: {unknown} not among its '
                f'arms {list(arms)}')
        if not reused and any(v in elsewhere for v in variants):
            raise ProtocolError(
                f'{proto.get("path", "protocol")}: '
                f'{[v for v in variants if v in elsewhere]} are read from '
                'earlier records (its reuse field), not run; choose from '
                f'{[v for v in arms if v not in elsewhere]}')
        arms = OrderedDict((v, arms[v]) for v in arms if v in variants)
    if not reused:
        arms = OrderedDict((v, seeds) for v, seeds in arms.items()
                           if v not in elsewhere)
    primary = {v for ep in proto['primary']
               for v in (ep['variant'], ep['reference'])}
    first = [v for v in arms if v in primary]
    rest = [v for v in arms if v not in primary]
    jobs = []
    for group in (first, rest):
        seeds = sorted({s for v in group for s in arms[v]})
        jobs += [(v, s) for s in seeds for v in group if s in arms[v]]
    return jobs


def load_records(record_dir: str) -> List[Dict]:
    """Every run record (``*.json``) in ``record_dir``."""
    import glob
    rows = []
    for path in sorted(glob.glob(osp.join(record_dir, '*.json'))):
        with open(path) as f:
            rows.append(json.load(f))
    return rows


def protocol_records(proto: Mapping, root: str = '.') -> List[Dict]:
    """The protocol's run records: its own ``records`` folder, and the
    rows of its reused arms from their folders (:func:`reused_arms`).

    Args:
        proto (Mapping): A protocol (:func:`load_protocol`).
        root (str): The repository root the folders are relative to.

    Returns:
        list[dict]: The rows; a reused row carries ``record_dir``.
    """
    elsewhere = reused_arms(proto)
    rows = [r for r in load_records(osp.join(root, proto['records']))
            if r.get('variant') not in elsewhere]
    for folder in OrderedDict.fromkeys(elsewhere.values()):
        for row in load_records(osp.join(root, folder)):
            if elsewhere.get(row.get('variant')) == folder:
                rows.append(dict(row, record_dir=folder))
    return rows


def _valid(proto: Mapping, rows: Sequence[Dict]) -> List[Dict]:
    """The rows run as the protocol says (dataset, split, schedule,
    data)."""
    data = proto['data']
    keep = []
    for r in rows:
        manifest = r.get('data') or {}
        if (r.get('dataset', 'kitti') == protocol_dataset(proto) and
                r.get('split') == proto['split'] and
                r.get('iters') == proto['iters'] and
                all(manifest.get(k) == data[k] for k in data
                    if k not in ('root', 'layout'))):
            keep.append(r)
    return keep


def missing_runs(proto: Mapping, rows: Sequence[Dict],
                 variants: Optional[Sequence[str]] = None
                 ) -> List[Tuple[str, int]]:
    """The protocol's runs (of ``variants``) without a valid record."""
    have = {(r['variant'], int(r['seed'])) for r in _valid(proto, rows)}
    return [j for j in protocol_jobs(proto, variants, reused=True)
            if j not in have]


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values (family-wise error control).

    Args:
        pvalues (Sequence[float]): Raw p-values.

    Returns:
        list[float]: Adjusted p-values, in the input order; reject
        hypothesis ``i`` at level ``alpha`` when ``adjusted[i] <= alpha``.
    """
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p, kind='stable')
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def paired_test(rows: Sequence[Dict], variant: str, reference: str,
                metric: str, confidence: float = 0.95) -> Dict:
    """Paired t-test of ``variant - reference`` on ``metric`` over the
    seeds both have.

    Returns:
        dict: ``n``, ``mean``, ``std`` (of the differences), ``low``,
        ``high`` (the ``confidence`` interval), ``t``, ``p`` (two-sided),
        ``diffs`` (per seed, seed -> difference).
    """
    from scipy import stats as st
    d = paired_differences(
        [r for r in rows if r['variant'] in (variant, reference)],
        baseline=reference, keys=[metric],
        confidence=confidence)[variant][metric]
    by = {(r['variant'], int(r['seed'])): r for r in rows}
    seeds = sorted(s for v, s in by if v == variant and
                   (reference, s) in by)
    diffs = OrderedDict(
        (s, float(by[variant, s][metric]) - float(by[reference, s][metric]))
        for s in seeds)
    t, p = float('nan'), float('nan')
    if d['n'] > 1 and d['std'] > 0:
        t = d['mean'] / (d['std'] / math.sqrt(d['n']))
        p = float(2 * st.t.sf(abs(t), d['n'] - 1))
    return dict(d, t=t, p=p, diffs=diffs)


def primary_results(proto: Mapping, rows: Sequence[Dict]) -> List[Dict]:
    """The primary endpoints: paired t-tests, Holm-adjusted p-values and
    the decision at the protocol's ``alpha``.

    Raises:
        ProtocolError: While a primary arm lacks one of its runs.
    """
    arms = sorted({v for ep in proto['primary']
                   for v in (ep['variant'], ep['reference'])})
    missing = missing_runs(proto, rows, arms)
    if missing:
        raise ProtocolError(
            f'{proto["path"]}: {len(missing)} run(s) of the primary arms are '
            f'not there yet ({", ".join(f"{v} seed {s}" for v, s in missing[:6])}'
            f'{" ..." if len(missing) > 6 else ""}); the protocol is '
            'analysed only when they are complete: run the same '
            'benchmark command to resume')
    rows = _valid(proto, rows)
    out = []
    for ep in proto['primary']:
        res = paired_test(rows, ep['variant'], ep['reference'], ep['metric'])
        out.append(dict(ep, **res))
    for res, adj in zip(out, holm([r['p'] for r in out]), strict=True):
        res['p_holm'] = adj
        res['reject'] = bool(adj <= float(proto['alpha']))
    return out


def _fmt(v: float, digits: int, sign: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return '-'
    return f'{v:+.{digits}f}' if sign else f'{v:.{digits}f}'


def protocol_figure(proto: Mapping, rows: Sequence[Dict],
                    path: str) -> Dict[str, List]:
    """The analysis as a picture (:func:`ddml.analysis.plots.
    plot_paired_seeds`): per primary metric, every run of every arm with
    its seeds joined; then the primary endpoints (Holm) and the
    exploratory comparisons on the same metrics (unadjusted), each a mean
    paired difference with its 95 % interval. Arms and comparisons are
    named by their variant keys (``ddml``, ``baseline``, ...).

    Args:
        proto (Mapping): A protocol (:func:`load_protocol`).
        rows (Sequence[dict]): Its run records.
        path (str): PNG to write.

    Returns:
        dict: What was drawn: ``panels`` and ``comparisons`` (as
        :func:`~ddml.analysis.plots.plot_paired_seeds` takes them).

    Raises:
        ProtocolError: While a primary arm lacks one of its runs.
    """
    from .plots import plot_paired_seeds
    primaries = primary_results(proto, rows)
    rows = _valid(proto, rows)
    column_keys = _column_keys(proto)
    metrics = list(OrderedDict((ep['metric'], None)
                               for ep in proto['primary']))
    panels = []
    for metric in metrics:
        arms = OrderedDict()
        for variant in proto['arms']:
            vals = {int(r['seed']): float(r[metric]) for r in rows
                    if r['variant'] == variant and
                    math.isfinite(float(r.get(metric, float('nan'))))}
            if vals:
                arms[variant] = vals
        panels.append(dict(label=column_keys[metric][0], arms=arms))

    def named(metric: str) -> str:  # the metric, where there are several
        return f' ({column_keys[metric][0]})' if len(metrics) > 1 else ''

    comparisons = [dict(
        label=f'{r["id"]} {r["variant"]} - {r["reference"]}'
        + named(r['metric']),
        mean=r['mean'], low=r['low'], high=r['high'], primary=True,
        significant=r['reject'], note=f'Holm p {r["p_holm"]:.3f}')
        for r in primaries]
    done = {(r['variant'], r['reference'], r['metric']) for r in primaries}
    for variant, reference in proto.get('exploratory', []):
        for metric in metrics:
            if (variant, reference, metric) in done:
                continue
            res = paired_test(rows, variant, reference, metric)
            if res['n'] < 2:
                continue
            comparisons.append(dict(
                label=f'{variant} - {reference}' + named(metric),
                mean=res['mean'], low=res['low'], high=res['high'],
                primary=False, note=f'{res["n"]} pairs, p {res["p"]:.3f}'))
    plot_paired_seeds(panels, comparisons, path,
                      title=f'{proto["name"]} (split {proto["split"]})')
    return dict(panels=panels, comparisons=comparisons)


def protocol_report(proto: Mapping, rows: Sequence[Dict],
                    figure: Optional[str] = None) -> str:
    """The protocol's analysis in markdown: primary endpoints (Holm),
    arm means, exploratory paired differences (unadjusted, labelled so),
    manipulation checks and the per-seed values of the primary metrics.

    Args:
        proto (Mapping): A protocol (:func:`load_protocol`).
        rows (Sequence[dict]): Its run records (:func:`protocol_records`).
        figure (str, optional): A picture of the analysis
            (:func:`protocol_figure`) to show under the primary table, as
            a path relative to the report.

    Returns:
        str: The report.

    Raises:
        ProtocolError: While a primary arm lacks one of its runs.
    """
    primaries = primary_results(proto, rows)
    rows = _valid(proto, rows)
    columns = protocol_columns(proto)
    column_keys = _column_keys(proto)
    alpha = float(proto['alpha'])
    parts = [f'# {proto["name"]}: analysis', '',
             f'Protocol: `{proto["path"]}`. Split `{proto["split"]}`, '
             f'{proto["iters"]} iterations, data {dict(proto["data"])}. '
             f'Commits of the runs: '
             f'{", ".join(sorted({str(r.get("commit")) for r in rows}))}.',
             *(['Arms read from earlier records (not run by this '
                'protocol): ' + ', '.join(
                    f'{VARIANTS[a][0]} ({d})'
                    for a, d in reused_arms(proto).items()) + '.']
               if reused_arms(proto) else []),
             '', '## Primary endpoints (paired t, two-sided, Holm over '
             f'{len(primaries)}, family-wise alpha {alpha:g})', '']
    prow = []
    for r in primaries:
        digits = column_keys[r['metric']][3]
        prow.append([
            r['id'], f'{VARIANTS[r["variant"]][0]} - '
            f'{VARIANTS[r["reference"]][0]}', column_keys[r['metric']][0],
            str(r['n']), _fmt(r['mean'], digits, True),
            f'[{_fmt(r["low"], digits, True)}, '
            f'{_fmt(r["high"], digits, True)}]', _fmt(r['t'], 2),
            _fmt(r['p'], 4), _fmt(r['p_holm'], 4),
            'yes' if r['reject'] else 'no'])
    parts.append(format_table(
        ['id', 'comparison', 'metric', 'pairs', 'mean diff',
         '95 % CI (unadjusted)', 't', 'p', 'p (Holm)',
         f'significant at {alpha:g}'], prow, markdown=True))
    if figure:
        parts += ['', f'![runs per seed and paired differences]({figure})']
    agg = aggregate(rows)
    parts += ['', '## Arms (mean ± sample sd over seeds)', '']
    header = ['arm', 'runs'] + [c[0] for c in columns]
    arows = []
    for variant in proto['arms']:
        if variant not in agg:
            arows.append([VARIANTS[variant][0], '0'] + ['-'] * len(columns))
            continue
        stats = agg[variant]
        arows.append([VARIANTS[variant][0], str(len(stats['_seeds']))] + [
            (f'{stats[key]["mean"] * scale:.{d}f} ± '
             f'{stats[key]["std"] * scale:.{d}f}')
            if key in stats and math.isfinite(stats[key]['mean']) else '-'
            for _, key, scale, d, _ in columns])
    parts.append(format_table(header, arows, markdown=True))
    explo = [tuple(p) for p in proto.get('exploratory', [])]
    explo = [(ep['variant'], ep['reference']) for ep in proto['primary']] + \
        [p for p in explo if p not in
         {(ep['variant'], ep['reference']) for ep in proto['primary']}]
    parts += ['', '## Every column, paired (exploratory: unadjusted 95 % '
              'CIs, no claim rests on them; `*`: 0 outside)', '']
    erows = []
    for variant, reference in explo:
        pres = [r for r in rows if r['variant'] in (variant, reference)]
        diffs = paired_differences(pres, baseline=reference,
                                   keys=[c[1] for c in columns])
        if variant not in diffs:
            continue
        per = diffs[variant]
        n = max((v['n'] for v in per.values()), default=0)
        cells = []
        for _, key, scale, d, _ in columns:
            v = per.get(key)
            if not v or not math.isfinite(v['mean']):
                cells.append('-')
                continue
            ci = '' if not math.isfinite(v['low']) else \
                f' [{v["low"] * scale:+.{d}f}, {v["high"] * scale:+.{d}f}]'
            cells.append(f'{v["mean"] * scale:+.{d}f}{ci}'
                         f'{" *" if v["outside"] else ""}')
        erows.append([f'{VARIANTS[variant][0]} - {VARIANTS[reference][0]}',
                      str(n)] + cells)
    parts.append(format_table(['comparison', 'pairs'] +
                              [c[0] for c in columns], erows, markdown=True))
    checks = proto.get('manipulation_checks', [])
    if checks:
        parts += ['', 'Manipulation checks (they show the loss runs, not '
                  'that it helps): ' + ', '.join(
                      column_keys[k][0] if k in column_keys else k
                      for k in checks) + '.']
    parts += ['', '## Per seed (primary metrics)', '']
    metrics = list(OrderedDict((ep['metric'], None)
                               for ep in proto['primary']))
    by = {(r['variant'], int(r['seed'])): r for r in rows}
    seeds = sorted({s for _, s in by})
    srows = []
    for seed in seeds:
        srows.append([str(seed)] + [
            _fmt(float(by[v, seed][m]), column_keys[m][3])
            if (v, seed) in by else '-'
            for m in metrics for v in proto['arms']])
    parts.append(format_table(
        ['seed'] + [f'{VARIANTS[v][0]}: {column_keys[m][0]}'
                    for m in metrics for v in proto['arms']], srows,
        markdown=True))
    return '\n'.join(parts) + '\n'

"""The pre-registered protocol: file checks, run order, Holm's correction,
the paired test, and the analysis refusing to run early."""
import json
from pathlib import Path

import numpy as np
import pytest

from ddml.analysis.protocol import (ProtocolError, holm, load_protocol,
                                    missing_runs, paired_test,
                                    primary_results, protocol_figure,
                                    protocol_jobs, protocol_records,
                                    protocol_report, reused_arms)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = dict(root='data/x', num_train=10, num_val=2, num_test=5, seed=0,
            scale=0.3333)


def _proto(tmp_path, **changes):
    proto = dict(
        name='t', question='q', data=DATA, split='test', iters=12,
        arms=dict(baseline=[1, 2, 3], ddml=[1, 2, 3], dmap=[1, 2, 3],
                  qi=[7]),
        primary=[
            dict(id='P1', variant='ddml', reference='baseline',
                 metric='AP3D_mod_loose'),
            dict(id='P2', variant='ddml', reference='dmap',
                 metric='AP3D_mod_loose')
        ],
        alpha=0.05, exploratory=[['dmap', 'baseline']],
        manipulation_checks=['spearman'], records='r', report='r.md')
    proto.update(changes)
    path = tmp_path / 'p.json'
    path.write_text(json.dumps(proto))
    return str(path)


def _row(variant, seed, ap, split='test', iters=12, **extra):
    return dict(variant=variant, seed=seed, split=split, iters=iters,
                data=dict(DATA, layout={}), AP3D_mod_loose=ap,
                spearman=0.1, commit='abc', **extra)


def test_committed_protocol_is_valid():
    proto = load_protocol(str(REPO_ROOT / 'docs/efficacy/protocol.json'))
    assert proto['split'] == 'test' and proto['iters'] == 1200
    assert len(proto['primary']) <= 2
    for arm in ('baseline', 'ddml', 'dmap'):
        assert len(proto['arms'][arm]) >= 8
    assert len(proto['arms']['ddml-release']) >= 6
    assert (REPO_ROOT / 'docs/efficacy/protocol.md').is_file()


@pytest.mark.parametrize('change, field', [
    (dict(primary=[]), "'primary'"),
    (dict(arms=dict(baseline=[1], bogus=[1])), 'arms.bogus'),
    (dict(arms=dict(baseline=[1, 1], ddml=[1], dmap=[1])), 'arms.baseline'),
    (dict(primary=[dict(id='P', variant='ddml', reference='qi',
                        metric='AP3D_mod_loose')],
          arms=dict(ddml=[1], baseline=[1])), 'primary[0].reference'),
    (dict(primary=[dict(id='P', variant='ddml', reference='baseline',
                        metric='nope')]), 'primary[0].metric'),
    (dict(alpha=1.5), "'alpha'"),
    (dict(exploratory=[['dmap']]), 'exploratory[0]'),
    (dict(reuse=[dict(records='old')]), 'reuse[0]'),
    (dict(reuse=[dict(records='old', arms=['bogus'])]), 'reuse[0].arms'),
    (dict(reuse=[dict(records='old', arms=['dmap']),
                 dict(records='older', arms=['dmap'])]), 'reuse[1].arms'),
    (dict(reuse=[dict(records='old',
                      arms=['baseline', 'ddml', 'dmap', 'qi'])]), "'reuse'"),
])
def test_protocol_errors_name_the_field(tmp_path, change, field):
    with pytest.raises(ProtocolError) as err:
        load_protocol(_proto(tmp_path, **change))
    assert field in str(err.value) and 'p.json' in str(err.value)


def test_protocol_missing_key_and_bad_json(tmp_path):
    path = tmp_path / 'p.json'
    path.write_text('{"name": "x"}')
    with pytest.raises(ProtocolError, match="'question' is missing"):
        load_protocol(str(path))
    path.write_text('{')
    with pytest.raises(ProtocolError, match='not valid JSON'):
        load_protocol(str(path))


def test_jobs_seed_major_primary_arms_first(tmp_path):
    proto = load_protocol(_proto(tmp_path))
    jobs = protocol_jobs(proto)
    assert jobs[:3] == [('baseline', 1), ('ddml', 1), ('dmap', 1)]
    assert jobs[-1] == ('qi', 7) and len(jobs) == 10
    assert protocol_jobs(proto, ['qi']) == [('qi', 7)]
    with pytest.raises(ProtocolError, match='not among its arms'):
        protocol_jobs(proto, ['metricdepth'])


def test_holm_step_down():
    # hand-worked: sorted p 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == pytest.approx([0.02])


def test_paired_test_matches_scipy():
    from scipy import stats
    rng = np.random.default_rng(0)
    base = rng.normal(15, 3, 8)
    var = base + rng.normal(1.0, 1.5, 8)
    rows = [_row('baseline', s, float(b)) for s, b in enumerate(base)] + \
        [_row('ddml', s, float(v)) for s, v in enumerate(var)]
    res = paired_test(rows, 'ddml', 'baseline', 'AP3D_mod_loose')
    ref = stats.ttest_rel(var, base)
    assert res['n'] == 8
    assert res['t'] == pytest.approx(ref.statistic)
    assert res['p'] == pytest.approx(ref.pvalue)
    assert res['mean'] == pytest.approx(float(np.mean(var - base)))
    assert list(res['diffs']) == list(range(8))


def test_analysis_refuses_until_complete_and_reports(tmp_path):
    proto = load_protocol(_proto(tmp_path))
    aps = dict(baseline=[10., 12., 11.], ddml=[13., 14., 14.5],
               dmap=[12., 13.5, 13.])
    rows = [_row(v, s, aps[v][k]) for v in aps for k, s in
            enumerate([1, 2, 3])]
    # a row on the wrong split or schedule does not count
    bad = [r for r in rows if not (r['variant'] == 'dmap' and
                                   r['seed'] == 3)]
    bad.append(_row('dmap', 3, 13., split='val'))
    assert missing_runs(proto, bad) == [('dmap', 3), ('qi', 7)]
    with pytest.raises(ProtocolError, match='dmap seed 3'):
        primary_results(proto, bad)
    # complete primary arms: analysed (the exploratory qi arm may lack)
    res = primary_results(proto, rows)
    assert [r['id'] for r in res] == ['P1', 'P2']
    assert res[0]['mean'] == pytest.approx(np.mean([3., 2., 3.5]))
    assert res[0]['p_holm'] == pytest.approx(
        min(1, 2 * min(res[0]['p'], res[1]['p'])) if res[0]['p'] <
        res[1]['p'] else max(res[0]['p'], min(1, 2 * res[1]['p'])))
    text = protocol_report(proto, rows)
    assert 'Holm over 2' in text and '| P1 |' in text and '| P2 |' in text
    assert 'baseline' in text and '11.00 ± 1.00' in text  # arm means
    assert 'exploratory' in text and 'Spearman' in text
    assert 'depth-map head only - baseline' in text


def test_reused_arms_are_read_from_earlier_records_not_run(tmp_path):
    """A follow-up protocol pairs its new arm with an earlier protocol's
    records: those arms are not run, their rows come from the earlier
    folder (only of the reused arms), and the analysis waits for them."""
    proto = load_protocol(_proto(
        tmp_path, records='new', report='new.md',
        arms=dict(baseline=[1, 2, 3], ddml=[1, 2, 3], dmap=[1, 2, 3]),
        reuse=[dict(records='old', arms=['baseline', 'dmap'])]))
    assert reused_arms(proto) == {'baseline': 'old', 'dmap': 'old'}
    assert protocol_jobs(proto) == [('ddml', 1), ('ddml', 2), ('ddml', 3)]
    with pytest.raises(ProtocolError, match='earlier records'):
        protocol_jobs(proto, ['dmap'])
    aps = dict(baseline=[10., 12., 11.], ddml=[13., 14., 14.5],
               dmap=[12., 13.5, 13.])
    for folder, arms in (('old', ('baseline', 'dmap', 'ddml')),
                         ('new', ('ddml', 'dmap'))):
        (tmp_path / folder).mkdir()
        for v in arms:
            for k, seed in enumerate([1, 2, 3]):
                # the old folder's ddml rows and the new folder's dmap rows
                # are not the protocol's: marked by an impossible AP
                ap = -1. if (folder, v) in (('old', 'ddml'), ('new', 'dmap')) \
                    else aps[v][k]
                (tmp_path / folder / f'{v}_seed{seed}.json').write_text(
                    json.dumps(_row(v, seed, ap)))
    (tmp_path / 'old' / 'dmap_seed3.json').unlink()
    rows = protocol_records(proto, str(tmp_path))
    assert len(rows) == 8 and all(r['AP3D_mod_loose'] >= 0 for r in rows)
    assert {r.get('record_dir') for r in rows if r['variant'] != 'ddml'} \
        == {'old'}
    assert missing_runs(proto, rows) == [('dmap', 3)]
    with pytest.raises(ProtocolError, match='dmap seed 3'):
        primary_results(proto, rows)
    (tmp_path / 'old' / 'dmap_seed3.json').write_text(
        json.dumps(_row('dmap', 3, 13.)))
    rows = protocol_records(proto, str(tmp_path))
    res = primary_results(proto, rows)
    assert res[1]['mean'] == pytest.approx(np.mean([1., 0.5, 1.5]))
    text = protocol_report(proto, rows)
    assert 'Arms read from earlier records' in text and '(old)' in text


def test_figure_draws_every_run_and_the_report_shows_it(tmp_path):
    """The picture holds each arm's runs by seed, the primaries with their
    Holm decision and the exploratory comparisons on the same metric; the
    report links it under the primary table."""
    proto = load_protocol(_proto(tmp_path))
    aps = dict(baseline=[10., 12., 11.], ddml=[13., 14., 14.5],
               dmap=[12., 13.5, 13.])
    rows = [_row(v, s, aps[v][k]) for v in aps for k, s in
            enumerate([1, 2, 3])]
    with pytest.raises(ProtocolError, match='dmap seed 3'):
        protocol_figure(proto, rows[:-1], str(tmp_path / 'early.png'))
    assert not (tmp_path / 'early.png').exists()
    drawn = protocol_figure(proto, rows, str(tmp_path / 'r.png'))
    png = (tmp_path / 'r.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000
    (panel, ) = drawn['panels']
    assert list(panel['arms']) == ['baseline', 'ddml', 'dmap']  # qi: none
    assert panel['arms']['ddml'] == {1: 13., 2: 14., 3: 14.5}
    res = primary_results(proto, rows)
    comps = drawn['comparisons']
    assert [c['label'] for c in comps] == [
        'P1 ddml - baseline', 'P2 ddml - dmap', 'dmap - baseline']
    for comp, r in zip(comps, res):
        assert comp['primary'] and comp['significant'] == r['reject']
        assert (comp['mean'], comp['low'], comp['high']) == \
            (r['mean'], r['low'], r['high'])
        assert comp['note'] == f'Holm p {r["p_holm"]:.3f}'
    explo = paired_test(rows, 'dmap', 'baseline', 'AP3D_mod_loose')
    assert not comps[2]['primary']
    assert comps[2]['mean'] == pytest.approx(explo['mean'])
    assert comps[2]['note'] == f'3 pairs, p {explo["p"]:.3f}'
    text = protocol_report(proto, rows, figure='r.png')
    table_end = text.index('## Arms')
    assert text.index('](r.png)') < table_end
    assert '](' not in protocol_report(proto, rows)


def test_figure_names_the_metric_when_there_are_two(tmp_path):
    """Two primary metrics (as the Waymo protocol's): a panel each, and
    every comparison says which metric it is on."""
    proto = load_protocol(_proto(
        tmp_path, arms=dict(baseline=[1, 2, 3], ddml=[1, 2, 3]),
        primary=[dict(id='W1', variant='ddml', reference='baseline',
                      metric='AP3D_mod_loose'),
                 dict(id='W2', variant='ddml', reference='baseline',
                      metric='APBEV_mod_loose')],
        exploratory=[]))
    rows = [_row(v, s, ap + k, APBEV_mod_loose=ap + 2 * k)
            for v, ap in (('baseline', 10.), ('ddml', 12.))
            for k, s in enumerate([1, 2, 3])]
    drawn = protocol_figure(proto, rows, str(tmp_path / 'w.png'))
    assert [p['label'] for p in drawn['panels']] == [
        'Car AP3D mod 0.5', 'Car APBEV mod 0.5']
    assert drawn['panels'][1]['arms']['ddml'] == {1: 12., 2: 14., 3: 16.}
    assert [c['label'] for c in drawn['comparisons']] == [
        'W1 ddml - baseline (Car AP3D mod 0.5)',
        'W2 ddml - baseline (Car APBEV mod 0.5)']

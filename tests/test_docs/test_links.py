"""The repository's markdown points at what is there: every relative link
and image of README.md, configs/README.md and docs/ names a file or folder
of the repository (a figure the docs show, a report they cite, a config
they tell users to run)."""
import re
from pathlib import Path
from typing import List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
#: ``[text](target)`` and ``![alt](target)``; the target ends at a space
#: (an optional title follows) or the closing parenthesis.
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def markdown_files() -> List[Path]:
    """The markdown a user reads: top-level and configs READMEs, docs/."""
    files = [REPO / 'README.md', REPO / 'configs' / 'README.md']
    files += sorted((REPO / 'docs').rglob('*.md'))
    return [f for f in files if f.is_file()]


def relative_links(path: Path) -> List[Tuple[int, str]]:
    """``(line, target)`` of the links that name a path in the repository
    (not a URL, a mail address or an anchor of the same page); code blocks
    are skipped."""
    out, fenced = [], False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith('```'):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in LINK.findall(line):
            if re.match(r'^[a-z][a-z0-9+.-]*:', target) or \
                    target.startswith('#'):
                continue
            out.append((number, target.split('#', 1)[0]))
    return out


def test_finds_the_links_it_checks():
    """The pattern catches links, images and titles, and skips URLs."""
    text = ('see [a](docs/x.md), ![f](figures/y.png "t") and '
            '[web](https://example.org) [anchor](#h) [p](z.md#part)')
    tmp = REPO / 'docs'
    assert LINK.findall(text) == ['docs/x.md', 'figures/y.png',
                                  'https://example.org', '#h', 'z.md#part']
    assert markdown_files()[0] == REPO / 'README.md'
    assert any(f.parent == tmp / 'efficacy' for f in markdown_files())
    # the README shows the confirmatory run's picture
    assert any(t.endswith('.png')
               for _, t in relative_links(REPO / 'README.md'))


@pytest.mark.parametrize('path', markdown_files(),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_name_files_that_exist(path):
    broken = [f'{path.relative_to(REPO)}:{line}: {target}'
              for line, target in relative_links(path)
              if not (path.parent / target).exists()]
    assert not broken, 'links to nothing (fix the path or the file):\n' + \
        '\n'.join(broken)

"""Links: code repositories in free text, and arXiv papers that URLs point to."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.parsing.links import code_urls, linked_arxiv_ids

# -- code_urls ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # forms of one GitHub repository
        ("https://github.com/microsoft/LoRA", "https://github.com/microsoft/LoRA"),
        ("http://github.com/microsoft/LoRA", "https://github.com/microsoft/LoRA"),
        ("github.com/microsoft/LoRA", "https://github.com/microsoft/LoRA"),
        ("https://www.github.com/microsoft/LoRA", "https://github.com/microsoft/LoRA"),
        ("HTTPS://WWW.GitHub.COM/microsoft/LoRA", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA/", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA.git", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA.GIT/", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA.git.git", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA?utm_source=twitter&utm_medium=social", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA?ref=paperswithcode", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA?s=20&t=abc", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA#readme", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA/tree/main/examples/NLG", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA/blob/main/README.md#L10", "https://github.com/microsoft/LoRA"),
        ("https://github.com/microsoft/LoRA/issues/12", "https://github.com/microsoft/LoRA"),
        # prose around it
        ("Code: https://github.com/microsoft/LoRA.", "https://github.com/microsoft/LoRA"),
        ("(see github.com/microsoft/LoRA).", "https://github.com/microsoft/LoRA"),
        ("at github.com/microsoft/LoRA, and", "https://github.com/microsoft/LoRA"),
        ("at github.com/microsoft/LoRA; then", "https://github.com/microsoft/LoRA"),
        ("is github.com/microsoft/LoRA!", "https://github.com/microsoft/LoRA"),
        ("at github.com/microsoft/LoRA...", "https://github.com/microsoft/LoRA"),
        ("at github.com/microsoft/LoRA.git.", "https://github.com/microsoft/LoRA"),
        ("[code](https://github.com/microsoft/LoRA)", "https://github.com/microsoft/LoRA"),
        ("<https://github.com/microsoft/LoRA>", "https://github.com/microsoft/LoRA"),
        ('href="https://github.com/microsoft/LoRA"', "https://github.com/microsoft/LoRA"),
        ("“github.com/microsoft/LoRA”", "https://github.com/microsoft/LoRA"),
        ("available athttps://github.com/microsoft/LoRA", "https://github.com/microsoft/LoRA"),
        ("コードはgithub.com/microsoft/LoRAです", "https://github.com/microsoft/LoRA"),
        # names with dots, dashes, underscores
        ("github.com/huggingface/transformers.js", "https://github.com/huggingface/transformers.js"),
        ("github.com/a-b/c_d-e.f", "https://github.com/a-b/c_d-e.f"),
        ("github.com/org/.github", "https://github.com/org/.github"),
        # GitLab: nested groups, up to the "-" separator or a legacy route
        ("https://gitlab.com/group/project", "https://gitlab.com/group/project"),
        ("https://gitlab.com/group/sub/project/-/tree/main/src", "https://gitlab.com/group/sub/project"),
        ("gitlab.com/group/project.git", "https://gitlab.com/group/project"),
        ("gitlab.com/group/project/tree/master", "https://gitlab.com/group/project"),
        ("gitlab.com/group/project/blob/master/x.py", "https://gitlab.com/group/project"),
        # Bitbucket
        ("https://bitbucket.org/owner/repo/src/master/", "https://bitbucket.org/owner/repo"),
        # Hugging Face
        ("https://huggingface.co/meta-llama/Llama-2-7b", "https://huggingface.co/meta-llama/Llama-2-7b"),
        ("huggingface.co/bert-base/model.v1/tree/main", "https://huggingface.co/bert-base/model.v1"),
        ("https://huggingface.co/meta-llama/Llama-2-7b/blob/main/config.json", "https://huggingface.co/meta-llama/Llama-2-7b"),
        ("https://huggingface.co/spaces/org/demo", "https://huggingface.co/spaces/org/demo"),
        ("https://huggingface.co/spaces/org/demo/blob/main/app.py", "https://huggingface.co/spaces/org/demo"),
        ("https://huggingface.co/datasets/org/data?row=3", "https://huggingface.co/datasets/org/data"),
        ("https://hf.co/org/model", "https://huggingface.co/org/model"),
        ("https://www.huggingface.co/org/model.", "https://huggingface.co/org/model"),
    ],
)  # fmt: skip
def test_code_url_forms(text: str, expected: str) -> None:
    assert code_urls([text]) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "https://github.com/karpathy",  # a user, not a repository
        "https://github.com/",
        "https://github.com/orgs/google/repositories",
        "https://github.com/topics/llm",
        "https://github.com/sponsors/someone",
        "https://github.com/settings/tokens",
        "https://github.com/features/copilot",
        "https://mygithub.com/a/b",
        "https://api.github.com/repos/a/b",
        "https://gist.github.com/a/0123abcd",
        "https://raw.githubusercontent.com/a/b/main/x.py",
        "https://someone.github.io/project",
        "https://github.company.com/a/b",
        "https://example.org/github.com/a/b",
        "github.com/a.b/c",  # not an owner name
        "https://github.com/a/...",
        "https://gitlab.com/explore/projects",
        "https://gitlab.com/groups/g/sub",
        "https://gitlab.com/group",
        "https://gitlab.com/group/-/issues",
        "https://gitlab.com/group/-.git",
        "https://github.com/a/_",
        "https://bitbucket.org/account/signin",
        "https://huggingface.co/papers/2106.09685",  # a paper, not code
        "https://huggingface.co/docs/transformers/index",
        "https://huggingface.co/blog/lora",
        "https://huggingface.co/meta-llama",
        "https://huggingface.co/models?other=lora",
        "https://huggingface.co/spaces/org",
        "https://huggingface.co/datasets/squad",
        "https://huggingface.co/collections/org/name-0123",
        "https://arxiv.org/abs/2106.09685",
        "https://example.org/code",
        "",
    ],
)
def test_not_code(text: str) -> None:
    assert code_urls([text]) == []


def test_de_duplicated_first_seen_first_across_texts() -> None:
    texts = [
        None,
        "Code at https://github.com/Microsoft/LoRA and https://huggingface.co/org/m.",
        "",
        "github.com/microsoft/lora/tree/main, https://gitlab.com/microsoft/LoRA",
        "https://github.com/a/b https://github.com/MICROSOFT/LORA.git",
        "https://huggingface.co/spaces/org/m https://hf.co/ORG/M",
    ]
    assert code_urls(texts) == [
        "https://github.com/Microsoft/LoRA",
        "https://huggingface.co/org/m",
        "https://gitlab.com/microsoft/LoRA",  # another host: another repository
        "https://github.com/a/b",
        "https://huggingface.co/spaces/org/m",  # a space is not the model of the same name
    ]


def test_many_links_in_one_text() -> None:
    text = "Ours: github.com/a/b (models: huggingface.co/a/b-7b), baseline bitbucket.org/c/d."
    assert code_urls([text]) == [
        "https://github.com/a/b",
        "https://huggingface.co/a/b-7b",
        "https://bitbucket.org/c/d",
    ]


# -- linked_arxiv_ids -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://arxiv.org/abs/2106.09685", "2106.09685"),
        ("https://arxiv.org/abs/2106.09685v2", "2106.09685"),
        ("https://arxiv.org/pdf/2106.09685v1.pdf", "2106.09685"),
        ("https://arxiv.org/pdf/2106.09685", "2106.09685"),
        ("https://arxiv.org/pdf/2106.09685.pdf", "2106.09685"),
        ("https://arxiv.org/html/2106.09685v1", "2106.09685"),
        ("https://arxiv.org/html/2106.09685v1/#S3", "2106.09685"),
        ("http://arxiv.org/abs/2106.09685", "2106.09685"),
        ("https://www.arxiv.org/abs/2106.09685", "2106.09685"),
        ("http://export.arxiv.org/abs/2106.09685v3", "2106.09685"),
        ("HTTPS://ArXiv.org/ABS/2106.09685", "2106.09685"),
        ("arxiv.org/abs/2106.09685", "2106.09685"),
        ("https://arxiv.org/abs/2106.09685?context=cs.CL", "2106.09685"),
        ("https://arxiv.org/abs/1501.0001", "1501.0001"),  # four digits: before 2015
        ("https://arxiv.org/abs/hep-th/9901001", "hep-th/9901001"),
        ("https://arxiv.org/abs/hep-th/9901001v2", "hep-th/9901001"),
        ("https://arxiv.org/pdf/math.GT/0309136v1.pdf", "math.GT/0309136"),
        ("https://arxiv.org/abs/math.GT/0309136", "math.GT/0309136"),
        ("https://arxiv.org/abs/cond-mat/0001001", "cond-mat/0001001"),
        ("https://huggingface.co/papers/2106.09685", "2106.09685"),
        ("https://hf.co/papers/2106.09685", "2106.09685"),
        ("https://alphaxiv.org/abs/2106.09685", "2106.09685"),
        ("https://www.alphaxiv.org/abs/2106.09685v2", "2106.09685"),
        ("https://www.alphaxiv.org/overview/2106.09685", "2106.09685"),
        ("https://ar5iv.labs.arxiv.org/html/2106.09685", "2106.09685"),
        ("https://ar5iv.org/abs/2106.09685", "2106.09685"),
        ("https://doi.org/10.48550/arXiv.2106.09685", "2106.09685"),
        ("https://web.archive.org/web/2021/https://arxiv.org/abs/2106.09685", "2106.09685"),
    ],
)  # fmt: skip
def test_linked_arxiv_id_forms(url: str, expected: str) -> None:
    assert linked_arxiv_ids([url]) == [expected]


@pytest.mark.parametrize(
    "url",
    [
        "https://arxiv.org/list/cs.CL/recent",
        "https://arxiv.org/abs/2113.00001",  # month 13
        "https://arxiv.org/abs/2106.096851",  # six digits
        "https://arxiv.org/abs/21060.9685",
        "https://arxiv.org/abs/math.gt/0309136",  # subject class is upper case at arXiv
        "https://arxiv.org/a/hu_e_1",
        "https://fakearxiv.org/abs/2106.09685",
        "https://arxiv.org.evil/abs/2106.09685x",
        "https://huggingface.co/2106.09685",
        "https://huggingface.co/papers",
        "https://github.com/microsoft/LoRA",
        "https://t.co/abc",
        "2106.09685",  # an ID alone is not a link
        "",
    ],
)
def test_not_a_paper_link(url: str) -> None:
    assert linked_arxiv_ids([url]) == []


def test_linked_ids_de_duplicated_in_order() -> None:
    urls = [
        "https://huggingface.co/papers/2301.00002",
        None,
        "https://arxiv.org/abs/2106.09685v1",
        "",
        "https://arxiv.org/pdf/2106.09685v2.pdf",
        "https://www.alphaxiv.org/abs/2301.00002",
        "https://arxiv.org/abs/hep-th/9901001",
    ]
    assert linked_arxiv_ids(urls) == ["2301.00002", "2106.09685", "hep-th/9901001"]


# -- properties -----------------------------------------------------------------------------

MONTHS = st.integers(1, 12)
NEW_IDS = st.builds(
    lambda yy, mm, n, five: f"{yy:02d}{mm:02d}.{n:05d}" if five else f"{yy:02d}{mm:02d}.{n % 10000:04d}",
    st.integers(0, 99), MONTHS, st.integers(0, 99999), st.booleans(),
)  # fmt: skip
OLD_IDS = st.builds(
    lambda archive, subject, yy, mm, n: f"{archive}{subject}/{yy:02d}{mm:02d}{n:03d}",
    st.sampled_from(["hep-th", "math", "cond-mat", "astro-ph", "cs", "q-bio", "nlin"]),
    st.sampled_from(["", ".GT", ".AI", ".CL"]),
    st.integers(0, 99), MONTHS, st.integers(0, 999),
)  # fmt: skip
PAPER_FORMS = [
    "{s}{w}arxiv.org/abs/{id}{v}",
    "{s}{w}arxiv.org/pdf/{id}{v}",
    "{s}{w}arxiv.org/pdf/{id}{v}.pdf",
    "{s}{w}arxiv.org/html/{id}{v}",
    "{s}export.arxiv.org/abs/{id}{v}",
    "{s}huggingface.co/papers/{id}",
    "{s}{w}alphaxiv.org/abs/{id}{v}",
    "{s}{w}alphaxiv.org/overview/{id}",
]


@settings(max_examples=300)
@given(
    st.one_of(NEW_IDS, OLD_IDS),
    st.sampled_from(PAPER_FORMS),
    st.sampled_from(["https://", "http://", ""]),
    st.sampled_from(["www.", ""]),
    st.sampled_from(["", "v1", "v12"]),
    st.sampled_from(["", "/", "?context=cs", "#S2", ")", ".", ","]),
)
def test_a_paper_link_in_any_form_gives_its_id(
    arxiv_id: str, form: str, scheme: str, www: str, version: str, tail: str
) -> None:
    url = form.format(s=scheme, w=www, id=arxiv_id, v=version) + tail
    assert linked_arxiv_ids([url]) == [arxiv_id]


REPO_SEGMENT = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,12}", fullmatch=True)
OWNER = st.from_regex(r"[A-Za-z]{0,5}[0-9][A-Za-z0-9_-]{0,8}", fullmatch=True)  # no site page
REPO_FORMS = [
    ("github.com/{o}/{r}", "https://github.com/{o}/{r}"),
    ("gitlab.com/{o}/{r}", "https://gitlab.com/{o}/{r}"),
    ("bitbucket.org/{o}/{r}", "https://bitbucket.org/{o}/{r}"),
    ("huggingface.co/spaces/{o}/{r}", "https://huggingface.co/spaces/{o}/{r}"),
    ("huggingface.co/datasets/{o}/{r}", "https://huggingface.co/datasets/{o}/{r}"),
]


@settings(max_examples=300)
@given(
    OWNER,
    REPO_SEGMENT,
    st.sampled_from(REPO_FORMS),
    st.sampled_from(["https://", "http://", "", "https://www."]),
    st.sampled_from(["", "/", ".git", "/tree/main/src", "?utm_source=x", "#readme"]),
    st.sampled_from(["", ".", ",", ")", "!", "...", " and more"]),
)
def test_a_repository_link_in_any_form_gives_the_repository(
    owner: str, repo: str, form: tuple[str, str], scheme: str, suffix: str, prose: str
) -> None:
    given_form, expected = form
    text = f"Code: {scheme}{given_form.format(o=owner, r=repo)}{suffix}{prose}"
    assert code_urls([text]) == [expected.format(o=owner, r=repo)]


SEGMENTS = st.sampled_from([
    "a", "B", "c-d", "e.f", "g_h", "x.git", "y.", "-", "tree", "blob", "spaces", "datasets",
    "papers", "orgs", "docs", "..", "2106.09685",
])  # fmt: skip
LINKS = st.builds(
    lambda scheme, www, host, segments, tail: f"{scheme}{www}{host}/{'/'.join(segments)}{tail}",
    st.sampled_from(["https://", "http://", "", "HTTPS://"]),
    st.sampled_from(["", "www.", "WWW."]),
    st.sampled_from(["github.com", "GitHub.com", "gitlab.com", "bitbucket.org", "huggingface.co", "hf.co"]),
    st.lists(SEGMENTS, min_size=1, max_size=5),
    st.sampled_from(["", "/", "?utm_source=x", "#x", ".", ",", ")", "...", "/.", ".git"]),
)  # fmt: skip
PROSE = st.sampled_from(["", " ", "Code: ", "(", ")", ", ", "\u3053", "x", "/", "."])


@settings(max_examples=500)
@given(st.lists(st.lists(LINKS | PROSE, max_size=6).map("".join), max_size=4))
def test_code_urls_is_idempotent(texts: list[str]) -> None:
    once = code_urls(texts)
    assert code_urls(once) == once
    assert code_urls([" ".join(once)]) == once
    assert all(url.startswith("https://") and not url.endswith(("/", ".")) for url in once)
    assert len({url.lower() for url in once}) == len(once)


@settings(max_examples=300)
@given(st.lists(st.text(st.characters(exclude_characters="/")) | st.none(), max_size=5))
def test_text_without_links_gives_nothing(texts: list[str | None]) -> None:
    assert code_urls(texts) == []
    assert linked_arxiv_ids(texts) == []

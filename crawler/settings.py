"""Scrapy settings: the one configuration surface. Every knob is documented in README.

Override any of them with ``-s NAME=value``. Each service module (``crawler/services/``) reads
and checks its own settings; their defaults are here, grouped by service.
"""

from scrapy.settings import default_settings

from crawler import __version__

BOT_NAME = "hot_papers"
SPIDER_MODULES = ["spiders"]
NEWSPIDER_MODULE = "spiders"

# --- arXiv export API (crawler/services/arxiv.py) ---------------------------------------------
ARXIV_API_URL = "https://export.arxiv.org/api/query"
# Seconds between the starts of two arXiv requests (arXiv asks for >= 3). Never randomised.
ARXIV_DELAY = 3.0
# Extra seconds added to ARXIV_DELAY between two starts (counted where each attempt starts).
ARXIV_DELAY_MARGIN = 0.0
# Each arXiv request also waits ARXIV_DELAY after the previous answer or failure arrived: the
# server then provably sees starts ARXIV_DELAY apart, whatever connection set-up or a busy event
# loop did to the previous request on its way. Costs one answer's latency per request (~10 % on
# a backfill). False: starts ARXIV_DELAY + ARXIV_DELAY_MARGIN apart as counted in this process
# only (what the arxiv package does); on a loaded machine the stand-in then saw a gap of 2.1 s.
ARXIV_HOLD_AFTER_ANSWER = True
# IDs per arXiv request (the API answers at most 2000 entries at once).
ARXIV_BATCH_SIZE = 100
# Seconds without a new ID before a partial batch is sent while digests are still being read.
ARXIV_BATCH_WAIT = 2.0
ARXIV_SLOWDOWN_MAX = 60.0  # cap of the extra arXiv delay added after 429/503 answers

# --- Twitter oEmbed (crawler/services/oembed.py) ---------------------------------------------
OEMBED_URL = "https://publish.twitter.com/oembed"
# Parallel oEmbed requests to start with, the most it may adapt up to while answers stay fast
# and clean (0: no adaptation), and seconds between their starts.
OEMBED_CONCURRENCY = 4
OEMBED_CONCURRENCY_MAX = 16
OEMBED_DELAY = 0.0

# --- Twitter syndication: tweet details (crawler/services/syndication.py) -------------------
SYNDICATION_URL = "https://cdn.syndication.twimg.com/tweet-result"
TWEET_DETAILS = True  # False skips tweet details entirely (details.status "disabled")
SYNDICATION_CONCURRENCY = 4  # parallel requests to start with
SYNDICATION_CONCURRENCY_MAX = 16  # the most it adapts up to (0: no adaptation)
SYNDICATION_DELAY = 0.0
# How long a tweet's details stay fresh, by the tweet's age: [[age up to N days, TTL days], ...].
# Young tweets gather attention fast, old ones barely move. Older than the last row:
# STATE_TTL_DAYS "details/ok" (default 90).
DETAILS_TTL_BY_AGE = [[7, 1], [30, 3], [90, 7], [365, 30]]

# --- Semantic Scholar: citations (crawler/services/semantic_scholar.py) ----------------------
SEMANTIC_SCHOLAR_URL = "https://api.semanticscholar.org/graph/v1/paper/batch"
SEMANTIC_SCHOLAR = True  # False skips it entirely (impact.status "disabled")
# Sent as x-api-key; never logged. Empty: the environment variable S2_API_KEY, else keyless.
SEMANTIC_SCHOLAR_API_KEY = ""
S2_BATCH_SIZE = 500  # IDs per request (the API's maximum)
S2_BATCH_WAIT = 2.0  # like ARXIV_BATCH_WAIT
S2_DELAY = 1.0  # seconds between starts, retries included (the keyed rate: 1 request/s)

# --- OpenAlex: citations over time, the published version (crawler/services/openalex.py) ----
OPENALEX_URL = "https://api.openalex.org"  # /works (list filter) and /works/doi:… are appended
OPENALEX = True  # False skips it entirely (openalex.status "disabled")
# Sent as the api_key query parameter (masked in every log line). Empty: the environment
# variable OPENALEX_API_KEY, else keyless (a tiny daily allowance).
OPENALEX_API_KEY = ""
OPENALEX_BATCH_SIZE = 50  # DOIs per list request (OpenAlex's maximum page)
OPENALEX_BATCH_WAIT = 2.0  # like ARXIV_BATCH_WAIT
# Seconds between starts, one request at a time: at most 10 requests/s, a tenth of what a key
# allows (100/s); a 403 (the per-second limit) doubles the pause.
OPENALEX_DELAY = 0.1

# --- Hugging Face paper pages (crawler/services/hf_papers.py) ---------------------------------
HF_PAPERS_URL = "https://huggingface.co/api/papers"  # the arXiv ID is appended as a path segment
HF_PAPERS = True  # False skips it entirely (hf.status "disabled")
# Sent as "Authorization: Bearer ..."; never logged. Empty: the environment variable HF_TOKEN,
# else anonymous (500 requests per 5-minute window per IP; 1,000 with a free account's token).
HF_TOKEN = ""
HF_CONCURRENCY = 4  # requests at once, fixed; the RateLimit headers pace the rest

# --- Per paper: Semantic Scholar, OpenAlex, Hugging Face --------------------------------------
# How long a paper's values stay fresh by its age (from its arXiv ID's YYMM, counted from the
# 1st of that month): [[age up to N days, TTL days], ...]. The first month daily (61 days from
# the 1st, so a paper from the 30th gets a month too), the first year weekly, the first three
# years every two weeks; older: STATE_TTL_DAYS "<kind>/ok" (30 days: monthly).
PAPER_TTL_BY_AGE = [[61, 1], [366, 7], [1096, 14]]
# Observations of a paper's counts (citations, HF upvotes, GitHub stars) kept per paper and
# service (oldest dropped first).
PAPER_HISTORY_MAX = 365

# --- Retries (crawler/downloader/middleware.py) -----------------------------------------------
RETRY_TIMES = 4  # retries after the first attempt: 5 tries in all
RETRY_HTTP_CODES = [408, 429, 500, 502, 503, 504]
RETRY_BACKOFF_BASE = 1.0  # seconds: first retry waits ~1-2 s, then 2-3 s, 4-5 s, ...
RETRY_BACKOFF_MAX = 60.0  # no single backoff wait is longer (Retry-After may be)
RETRY_AFTER_MAX = 600.0  # a Retry-After longer than this gives up instead of waiting
# Connection-level failures in a row, with no answer at all, after which a service's requests
# are no longer retried (until it answers again); 0 disables the breaker.
RETRY_UNREACHABLE_AFTER = 10
# A service announcing its window in RateLimit headers (Hugging Face) gets no new request once
# this many requests of the window are surely left (answers read out of order never raise the
# count: crawler/downloader/gate.py RateBudget); the next one waits for the window to reset.
RATELIMIT_RESERVE = 0
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.downloader.middleware.BackoffRetryMiddleware": 550,
}

USER_AGENT = (
    f"hot-papers-crawler/{__version__} (Scrapy; builds a research dataset from 'Hot Papers' "
    "digests; one arXiv request per 3 s)"
)
ROBOTSTXT_OBEY = False  # API endpoints, used within their documented terms

# --- Engine -------------------------------------------------------------------------------------
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
ADDONS = {"crawler.addon.ServiceSlotsAddon": 0}
CONCURRENT_REQUESTS = 16
# Entries of one digest in the pipelines at once (Scrapy reads up to twice as many more ahead).
# Scrapy keeps this many worker tasks per digest being read: 200 cost ~20 MB over a backfill's
# ~90 digests in flight. 100 still lets one large digest alone fill arXiv batches.
CONCURRENT_ITEMS = 100
# Bytes of digests whose entries are still in the pipelines (Scrapy's default: 5,000,000): the
# window that batches fill from. 3 MB holds ~50 real digests, ~1,100 entries: enough for a full
# Semantic Scholar batch (500 papers) while arXiv works, and ~40 MB less than Scrapy's default.
SCRAPER_SLOT_MAX_ACTIVE_SIZE = 3_000_000
DOWNLOAD_TIMEOUT = 60
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024  # the largest arXiv answer (2000 entries) is ~10 MB
DOWNLOAD_WARNSIZE = 8 * 1024 * 1024

ITEM_PIPELINES = {
    "crawler.enrich.pipeline.EnrichmentPipeline": 100,
    "crawler.record.pipeline.RecordPipeline": 900,
}
# Entries read from one digest at most; the rest of an absurd file is skipped with an error.
MAX_ENTRIES_PER_DIGEST = 1000
# Files and folders one folder or pattern of the source argument may visit; beyond it that
# source is refused with an error (a tree far larger than any digest archive, a runaway glob).
SOURCE_SCAN_MAX = 100_000

# A run whose code, settings, sources (byte for byte), stored values and outputs are as a
# complete run left them, before any stored value goes stale, keeps every output and sends no
# request: it could only write the same bytes again (crawler/reuse.py). False: always crawl.
SKIP_UNCHANGED = True
# glibc's malloc arenas for the crawl's process: 1 keeps each short-lived thread that parses a
# digest from keeping a heap of its own (~15 MB of a backfill's peak). 0: glibc's default.
MALLOC_ARENA_MAX = 1

# --- Output -------------------------------------------------------------------------------------
FEED_STORAGES = {
    "": "crawler.export.feedstorage.AtomicFileFeedStorage",
    "file": "crawler.export.feedstorage.AtomicFileFeedStorage",
}
# Where records go when no feed is given (-o/-O or FEEDS); an empty string disables it. Not put in
# FEEDS directly because Scrapy merges FEEDS with -O, which would write both files.
DEFAULT_FEED = "output/digests.jsonl"
FEED_EXPORT_ENCODING = "utf-8"

# --- State between runs (crawler/state/) ------------------------------------------------------
STATE_DB = "output/state.sqlite3"  # empty string: no state, every run fetches everything
# Overrides of how long a stored value stays good, in days, by "kind/status" (e.g. "arxiv/ok").
# Each service module holds its defaults (README lists them); errors are always fetched again.
STATE_TTL_DAYS: dict[str, float] = {}
# Observations of a tweet's engagement kept per tweet (oldest dropped first).
DETAILS_HISTORY_MAX = 365
# What `-a refresh=...` fetches again even when fresh (set by the spider from its argument).
REFRESH = "none"

FEED_EXPORTERS = {
    "jsonlines": "crawler.export.jsonlines.SortedJsonLinesExporter",
    "jsonl": "crawler.export.jsonlines.SortedJsonLinesExporter",
    "parquet": "crawler.export.parquet.ParquetItemExporter",
    "csv": "crawler.export.csvfeed.JsonCellCsvItemExporter",  # nested values as JSON text
}
# After a run that replaced the snapshot: typed Parquet tables and a DuckDB file in a folder,
# and a self-contained HTML report ("{name}" is the snapshot's path without its suffix: the
# defaults sit beside output/digests.jsonl). Empty turns either off; the report needs the
# dataset.
DATASET_DIR = "{name}.dataset"
REPORT_FILE = "{name}.report.html"

# --- Reporting ----------------------------------------------------------------------------------
EXTENSIONS = {
    "crawler.outcome.Outcome": -100,  # first: the others look it up; before the FeedExporter (0)
    "crawler.state.extension.State": 100,
    "crawler.progress.CrawlReport": 500,
    "crawler.export.runfiles.RunFiles": 600,
    "crawler.consoles.RemoteControl": 0,  # Scrapy's, imported only when it is on
}
# Scrapy's own extensions, less its remote-control console, whose module imports aiohttp
# (~9 MB resident) whenever its name is listed, even as None (Scrapy imports every key to
# compare them). crawler/consoles.py stands in for it and imports it only when it is on.
EXTENSIONS_BASE = {
    path: order
    for path, order in default_settings.EXTENSIONS_BASE.items()
    if path != "scrapy.extensions.remote_control.RemoteControl"
}
# Scrapy's two consoles run Python sent to a local port inside the crawl: the remote control
# (token in a job file under the user's profile) and telnet (password in the log). A scheduled
# job has no one at them, and they open the process that holds the state database: off. True
# turns either on for a crawl you watch (`-s TELNETCONSOLE_ENABLED=True`).
REMOTE_CONTROL_ENABLED = False
TELNETCONSOLE_ENABLED = False
PROGRESS_INTERVAL = 10.0  # seconds between progress lines; 0 turns them off
LOGSTATS_INTERVAL = 0  # Scrapy's pages/items-per-minute line says nothing useful here
COMMANDS_MODULE = "crawler.commands"  # `scrapy crawl` with a meaningful exit status

LOG_LEVEL = "INFO"

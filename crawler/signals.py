"""Signals between the spider and the enrichment pipelines.

The spider announces entries as it parses them, so enrichment can start (and arXiv batches can
fill) before the items themselves reach the pipelines; and it says when no more digests will come,
so the last partial batch goes out at once instead of after a timeout.
"""

entry_parsed = object()  # kwargs: entry (crawler.items.DigestEntry)
# kwargs: post (crawler.items.Post), source ((url, name, record name)), sha256 (of its bytes),
# warnings (the problem lines logged that lost nothing); every digest read, with entries or not
digest_read = object()
digests_exhausted = object()  # no kwargs: every source has been read or has failed

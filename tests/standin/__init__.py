"""Local stand-in for the arXiv export API and Twitter oEmbed, for tests and offline crawls."""

from .catalogue import Author, Catalogue, Paper, Tweet
from .faults import Fault, FaultSet
from .server import RequestRecord, StandIn, tweet_id_from_url

__all__ = [
    "Author",
    "Catalogue",
    "Fault",
    "FaultSet",
    "Paper",
    "RequestRecord",
    "StandIn",
    "Tweet",
    "tweet_id_from_url",
]

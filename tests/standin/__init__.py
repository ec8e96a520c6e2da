"""Local stand-in for arXiv, Twitter oEmbed and syndication, Semantic Scholar and Hugging Face
(tests, offline)."""

from .catalogue import Author, Catalogue, Paper, Tweet
from .citations import Citation
from .details import Media, TweetDetails, User
from .faults import DEFAULT_MIXED_KINDS, SHAPE_KINDS, Fault, FaultSet, Script
from .hf_papers import HfPage
from .links import Link
from .requestlog import RequestRecord
from .server import StandIn, request_key, tweet_id_from_url
from .token import js_radix_string, syndication_token

__all__ = [
    "DEFAULT_MIXED_KINDS",
    "SHAPE_KINDS",
    "Author",
    "Catalogue",
    "Citation",
    "Fault",
    "FaultSet",
    "HfPage",
    "Link",
    "Media",
    "Paper",
    "RequestRecord",
    "Script",
    "StandIn",
    "Tweet",
    "TweetDetails",
    "User",
    "js_radix_string",
    "request_key",
    "syndication_token",
    "tweet_id_from_url",
]

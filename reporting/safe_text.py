"""Text built from data, made inert for the place it goes: Slack mrkdwn and Dagster's Markdown metadata.

Campaign names, landing pages, sources and form names come from UTM parameters and public forms, so
anyone on the internet writes them. Slack parses `&`, `<` and `>` as control characters (mentions such
as `<!channel>`, links such as `<https://x|label>`); its formatting reference says to replace them with
`&amp;`, `&lt;` and `&gt;` when they are not meant for parsing, and nothing else. Slack also turns a bare
URL or domain in a message into a live link, so URL-like text from data is "defanged"
(`https://evil.example` -> `https[:]//evil[.]example`): the only links in a message are the ones
`slack_link` makes from our own settings.

HTML (report and e-mail) is escaped by Jinja's autoescape and `html.escape` in the charts; it does not
go through here.
"""

from __future__ import annotations

import re
from urllib.parse import quote

# A scheme URL (`https://…`, `javascript://…`), a `www.` host, or a bare `host.tld[/path]`: the shapes
# Slack (and most Markdown renderers) turn into links. A tld is two or more ASCII letters, so numbers
# ("1.5×") and abbreviations ("e.g.") are left alone.
_URL_LIKE = re.compile(
    r"(?i)\b(?:[a-z][a-z0-9+.\-]*://\S*|www\.\S+|(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+[a-z]{2,}\b(?:/\S*)?)"
)


def defang_urls(text: str) -> str:
    """`https://evil.example/login` -> `https[:]//evil[.]example/login`: readable, never a link."""

    def defang(match: re.Match[str]) -> str:
        token = match.group(0)
        scheme, sep, rest = token.partition("://")
        if not sep:
            scheme, rest = "", token
        host, slash, path = rest.partition("/")
        return (f"{scheme}[:]//" if sep else "") + host.replace(".", "[.]") + slash + path

    return _URL_LIKE.sub(defang, text)


def slack_escape(text: str) -> str:
    """Slack's three control characters as HTML entities (`&` first, so nothing is escaped twice)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: str) -> str:
    """Text from data for a Slack `mrkdwn` or `text` field: escaped, and no live links or mentions."""
    return slack_escape(defang_urls(str(text)))


def slack_link(url: str, label: str) -> str:
    """A link we make (our report URL): `<url|label>` with both parts unable to break out of it."""
    if not re.match(r"(?i)^https?://", url):
        raise ValueError(f"only http(s) links are sent to Slack, not {url[:40]!r}")
    # `|` and `>` end the URL part of a Slack link; percent-encode them (and spaces, quotes, `<`).
    safe_url = quote(url, safe=":/?#[]@!$&'()*+,;=%~-._")
    return f"<{slack_escape(safe_url)}|{slack_escape(label).replace('|', '¦')}>"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def markdown_text(text: str) -> str:
    """Text from data for Dagster's Markdown metadata: no links, images, HTML or emphasis from data."""
    # Escape first: the `[.]` and `[:]` that defanging adds are not followed by `(`, so they stay text.
    return defang_urls(_MARKDOWN_SPECIAL.sub(r"\\\1", str(text)))


__all__ = ["defang_urls", "markdown_text", "slack_escape", "slack_link", "slack_text"]

"""The transition feed: one event per applied transition, written with it, read by named consumers.

`event` is the value consumers receive and where each event's lane comes from; `consumer` is the loop
that hands events to a handler and acknowledges them. The rows themselves are the store's (`_store.events`).
"""

from claimstate._feed.consumer import Consumer, consume
from claimstate._feed.event import LANES, Event, cursor_of, lane_of, parse_cursor, summary

__all__ = ["LANES", "Consumer", "Event", "consume", "cursor_of", "lane_of", "parse_cursor", "summary"]

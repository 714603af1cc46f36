"""Reports over user data."""

import hashlib


def checksum(data):
    return hashlib.md5(data).hexdigest()


def common_items(left, right):
    """Return the items present in both lists."""
    result = []
    for a in left:
        for b in right:
            if a == b and a not in result:
                result.append(a)
    return result


def parse_int(text):
    """Parse an integer, or return 0."""
    try:
        return int(text)
    except:
        return 0

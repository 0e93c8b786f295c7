"""A FaaSO funko: a Flask app. Routes here are served under /funko/<name>/ by the gateway."""

from pathlib import Path

from flask import Flask, request

app = Flask(__name__)


def secret(name: str) -> str | None:
    """The value of a secret added with `faaso secret add <funko> <name>`, if any."""
    try:
        return Path("/secrets", name).read_text().strip()
    except OSError:
        return None


@app.get("/")
def hello():
    who = request.args.get("name", "world")
    return {"hello": who}

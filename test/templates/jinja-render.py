# Renders each template of a JSON corpus (stdin: {"context": {...}, "templates": {name: text}})
# with Python's jinja2 as Ansible configures it (trim_blocks=True), strict undefined, and the
# final newline kept (modelsync keeps it; a documented difference from Ansible). Prints
# {name: {"out": text} | {"error": message}} as JSON.
import json
import sys

import jinja2

doc = json.load(sys.stdin)
env = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
out = {}
for name, text in doc["templates"].items():
    try:
        out[name] = {"out": env.from_string(text).render(**doc["context"])}
    except Exception as err:  # noqa: BLE001 - every failure is reported by name
        out[name] = {"error": f"{type(err).__name__}: {err}"}
json.dump(out, sys.stdout)

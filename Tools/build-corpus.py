#!/usr/bin/env python3
"""Build a plain-text continual-training corpus from Debian packages (issue 10: no hub is reachable).

Usage:  python3 Tools/build-corpus.py OUT_DIR [--packages python3.11-doc manpages manpages-dev]
                                              [--held-out 0.05] [--max-mb 0]

Needs only the Python standard library, apt-get (to download .deb files, no root needed for
`apt-get download`), dpkg-deb (to unpack them) and groff (to render manual pages).

Writes OUT_DIR/train.txt, OUT_DIR/held_out.txt and OUT_DIR/PROVENANCE.json (packages, versions,
SHA-256 of each .deb, document counts, bytes, the split rule). Documents are separated by a blank
line. The held-out documents are also written per package, OUT_DIR/held_out/<package>.txt (the
same documents in the same order, so the per-package files together hold exactly held_out.txt's
documents), for per-domain perplexity (`corpus.domains` in a `fusekit distill` spec); PROVENANCE.json
lists them under "domains". The split is by document: a document goes to held_out when the first 8 hex digits of the
SHA-256 of its source path, as an integer, fall below held_out * 2^32, so the split does not depend on
the order files are found in or on the other packages.
"""
import argparse, glob, hashlib, html.parser, json, os, re, subprocess, sys, tempfile

SKIP_TAGS = {"script", "style", "nav", "head", "footer"}
BLOCK_TAGS = {"p", "div", "pre", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "br", "section",
              "blockquote", "ul", "ol", "dl"}


class HTMLText(html.parser.HTMLParser):
    """Visible text of a Sphinx page: navigation, sidebars, scripts and styles dropped, blocks as lines."""

    VOID = {"br", "img", "meta", "link", "hr", "input", "col", "area", "base", "wbr", "source", "embed", "param", "track"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self.stack, self.pre = [], [], 0   # stack: open non-void tags, True where skipping starts

    def skipping(self):
        return any(self.stack)

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            if tag == "br" and not self.skipping(): self.out.append("\n")
            return
        a = dict(attrs)
        cls = a.get("class", "") or ""
        skip = tag in SKIP_TAGS or a.get("role") == "navigation" or any(c in cls.split() for c in ("sphinxsidebar", "related", "footer", "headerlink"))
        self.stack.append(skip)
        if self.skipping(): return
        if tag == "pre": self.pre += 1
        if tag in BLOCK_TAGS: self.out.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag == "br" and not self.skipping(): self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in self.VOID or not self.stack: return
        was_skipping = self.skipping()
        self.stack.pop()
        if was_skipping: return
        if tag == "pre": self.pre = max(0, self.pre - 1)
        if tag in BLOCK_TAGS: self.out.append("\n")

    def handle_data(self, data):
        if self.skipping(): return
        self.out.append(data if self.pre else re.sub(r"[ \t\r\n]+", " ", data))

    def text(self):
        t = "".join(self.out).replace("\u00b6", "")
        lines = [l.strip() if not l.startswith("    ") else l.rstrip() for l in t.split("\n")]
        t = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", t).strip()


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--packages", nargs="+", default=["python3.11-doc", "manpages", "manpages-dev"])
    ap.add_argument("--held-out", type=float, default=0.05)
    ap.add_argument("--max-mb", type=float, default=0, help="stop adding documents after this many MB of text (0: all)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="fusekit-corpus-")
    provenance = {"format": "fusekit-corpus/1", "tool": "Tools/build-corpus.py", "packages": [],
                  "split": f"held_out when int(sha256(source_path)[:8], 16) < {args.held_out} * 2^32", "documents": {}}
    docs = []  # (source path, text)
    for pkg in args.packages:
        run(["apt-get", "download", pkg], cwd=work)
        deb = sorted(glob.glob(os.path.join(work, f"{pkg}_*.deb")))[-1]
        sha = hashlib.sha256(open(deb, "rb").read()).hexdigest()
        version = run(["dpkg-deb", "-f", deb, "Version"]).stdout.decode().strip()
        root = os.path.join(work, pkg)
        run(["dpkg-deb", "-x", deb, root])
        n = 0
        for path in sorted(glob.glob(os.path.join(root, "usr/share/doc/**/*.html"), recursive=True)):
            if "/_static/" in path or path.endswith(("genindex.html", "search.html", "py-modindex.html")) or "/genindex-" in path:
                continue
            p = HTMLText()
            p.feed(open(path, encoding="utf-8", errors="replace").read())
            t = p.text()
            if len(t) > 200:
                docs.append((os.path.relpath(path, root), t, pkg)); n += 1
        for path in sorted(glob.glob(os.path.join(root, "usr/share/man/man*/*"))):
            if os.path.islink(path): continue
            try:
                r = subprocess.run(["sh", "-c", f"zcat -f '{path}' | groff -man -Tutf8 -rHY=0 -dAD=l -P-c -P-b -P-u 2>/dev/null"],
                                   capture_output=True, env=dict(os.environ, MANWIDTH="80"), timeout=60)
            except subprocess.TimeoutExpired:
                continue
            t = r.stdout.decode("utf-8", errors="replace")
            t = re.sub(r"\x1b\[[0-9;]*m", "", t)
            t = re.sub(r"\n{3,}", "\n\n", "\n".join(l.rstrip() for l in t.split("\n"))).strip()
            if len(t) > 200:
                docs.append((os.path.relpath(path, root), t, pkg)); n += 1
        provenance["packages"].append({"name": pkg, "version": version, "deb": os.path.basename(deb), "sha256": sha, "documents": n})
    docs.sort()
    limit = args.max_mb * 1e6
    train, held, size = [], [], 0
    held_by_package = {pkg: [] for pkg in args.packages}
    for src, text, pkg in docs:   # sorted by source path, as before domains existed: train/held_out bytes unchanged
        if limit and size > limit: break
        size += len(text.encode())
        h = int(hashlib.sha256(src.encode()).hexdigest()[:8], 16)
        if h < args.held_out * 2 ** 32:
            held.append(text); held_by_package[pkg].append(text)
        else:
            train.append(text)

    def write(name, part):
        data = "\n\n".join(part) + "\n"
        path = os.path.join(args.out, name)
        tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(name) + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f: f.write(data)
        os.replace(tmp, path)
        return {"documents": len(part), "bytes": len(data.encode()), "words": len(data.split()),
                "sha256": hashlib.sha256(data.encode()).hexdigest()}

    for name, part in (("train.txt", train), ("held_out.txt", held)):
        provenance["documents"][name] = write(name, part)
    os.makedirs(os.path.join(args.out, "held_out"), exist_ok=True)
    provenance["domains"] = {}
    for pkg, part in held_by_package.items():
        if not part: continue   # a package with no held-out document gets no domain file
        name = f"held_out/{pkg}.txt"
        provenance["domains"][pkg] = dict(path=name, package=pkg, **write(name, part))
    tmp = os.path.join(args.out, ".PROVENANCE.json.tmp")
    with open(tmp, "w") as f: json.dump(provenance, f, indent=2); f.write("\n")
    os.replace(tmp, os.path.join(args.out, "PROVENANCE.json"))
    subprocess.run(["rm", "-rf", work])
    print(json.dumps(provenance["documents"]))


if __name__ == "__main__":
    main()

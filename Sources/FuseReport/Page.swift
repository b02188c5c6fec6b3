import Foundation

/// One self-contained HTML page: inline CSS, inline SVG, a few lines of inline script that check every
/// plot has data (the result lands in `<body data-check>`), no network access at view time.
public struct ReportPage {
    public struct Section {
        public var title: String
        public var intro: String
        public var body: String
        public init(title: String, intro: String, body: String) { self.title = title; self.intro = intro; self.body = body }
    }

    public var title: String
    public var subtitle: String
    /// Plain-language findings, one sentence each, shown first.
    public var summary: [String] = []
    public var warnings: [String] = []
    public var sections: [Section] = []

    public init(title: String, subtitle: String) { self.title = title; self.subtitle = subtitle }

    public var plotCount: Int { sections.reduce(0) { $0 + $1.body.components(separatedBy: "class=\"plot\"").count - 1 } }

    public func html() -> String {
        let e = SVG.escape
        var s = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(e(title))</title>
        <style>
        body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0;background:#f5f5f7}
        main{max-width:1080px;margin:0 auto;padding:28px 28px 60px}
        header h1{font-size:26px;margin:0 0 4px}header p{color:#555;margin:0 0 18px}
        .summary{background:#fff;border-left:5px solid #4269d0;padding:14px 20px;border-radius:6px;box-shadow:0 1px 3px #0001}
        .summary li{margin:4px 0}.warn{background:#fff4e5;border-left:5px solid #ef8f00;padding:10px 16px;border-radius:6px;margin:10px 0}
        section{background:#fff;margin:22px 0;padding:16px 22px;border-radius:8px;box-shadow:0 1px 3px #0001;overflow-x:auto}
        section h2{font-size:19px;margin:4px 0 6px}section p.intro{color:#444;margin:0 0 12px;max-width:880px}
        svg .axis{font-size:11px;fill:#555}svg .cell{font-size:10px}
        table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}
        th:first-child,td:first-child{text-align:left}th{background:#fafafa;position:sticky;top:0}
        code,pre{font:12px ui-monospace,Menlo,Consolas,monospace}pre{background:#f7f7f9;padding:10px;border-radius:6px;overflow-x:auto}
        details summary{cursor:pointer;color:#4269d0;margin:6px 0}
        </style></head>
        <body data-check="pending"><main>
        <header><h1>\(e(title))</h1><p>\(e(subtitle))</p></header>

        """
        for w in warnings { s += "<div class=\"warn\">\(e(w))</div>\n" }
        if !summary.isEmpty {
            s += "<div class=\"summary\"><strong>In short</strong><ul>" + summary.map { "<li>\(e($0))</li>" }.joined() + "</ul></div>\n"
        }
        for sec in sections {
            s += "<section><h2>\(e(sec.title))</h2><p class=\"intro\">\(e(sec.intro))</p>\n\(sec.body)\n</section>\n"
        }
        s += """
        <footer><p style="color:#888;font-size:12px">Made by fusekit report. Hover a cell or point for its value.</p></footer>
        </main>
        <script>
        (function(){var plots=document.querySelectorAll('svg.plot');var bad=[];
        plots.forEach(function(p,i){var n=parseInt(p.getAttribute('data-points')||'0',10);
        if(!(n>0)||p.querySelectorAll('rect,path,circle').length===0){bad.push(i)}});
        document.body.setAttribute('data-check',bad.length?('empty-plots:'+bad.join(',')):('ok:'+plots.length));})();
        </script>
        </body></html>

        """
        return s
    }
}

/// A simple HTML table; cells are escaped.
func htmlTable(header: [String], rows: [[String]]) -> String {
    let e = SVG.escape
    var s = "<table><thead><tr>" + header.map { "<th>\(e($0))</th>" }.joined() + "</tr></thead><tbody>"
    for r in rows { s += "<tr>" + r.map { "<td>\(e($0))</td>" }.joined() + "</tr>" }
    return s + "</tbody></table>"
}

func percent(_ v: Double) -> String { v.isFinite ? String(format: "%.1f%%", v * 100) : "n/a" }

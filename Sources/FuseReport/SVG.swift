import Foundation

/// Inline SVG plots for the report page. Every plot is an `<svg class="plot" data-points="N">` so the
/// page's self-check (and the browser test) can see that it has data.
enum SVG {
    static let palette = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e", "#9498a0"]

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func fmt(_ v: Double, digits: Int = 3) -> String {
        if v.isNaN { return "n/a" }
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.\(max(1, digits - 1))e", v) }
        return String(format: "%.\(digits)g", v)
    }

    static func num(_ v: Double) -> String { String(format: "%.1f", v) }

    /// Colour for t in [0, 1] on a white-to-blue ramp, or for t in [-1, 1] on red-white-blue.
    static func color(_ t: Double, diverging: Bool) -> String {
        func mix(_ a: (Double, Double, Double), _ b: (Double, Double, Double), _ f: Double) -> String {
            let f = max(0, min(1, f))
            let r = Int(a.0 + (b.0 - a.0) * f), g = Int(a.1 + (b.1 - a.1) * f), bl = Int(a.2 + (b.2 - a.2) * f)
            return String(format: "#%02x%02x%02x", r, g, bl)
        }
        let white = (247.0, 247.0, 247.0), blue = (33.0, 102.0, 172.0), red = (178.0, 24.0, 43.0)
        if diverging { return t >= 0 ? mix(white, blue, t) : mix(white, red, -t) }
        return mix(white, blue, t)
    }

    /// A rows × columns grid of coloured cells with the value in each cell's tooltip (and printed
    /// when the grid is small). Nil values are grey. `diverging` maps [-1, 1]; otherwise the colour
    /// scale runs from 0 to the largest value.
    static func heatmap(rowLabels: [String], columnLabels: [String], values: [[Double?]], diverging: Bool,
                        caption: String) -> String {
        let cell = columnLabels.count > 12 ? 22.0 : 56.0
        let rowHeight = rowLabels.count > 40 ? 12.0 : 20.0
        let left = 12.0 + 7.0 * Double(min(28, rowLabels.map(\.count).max() ?? 4))
        let top = 14.0 + 6.5 * Double(min(26, columnLabels.map(\.count).max() ?? 4))
        let width = left + cell * Double(columnLabels.count) + 90, height = top + rowHeight * Double(rowLabels.count) + 24
        let finite = values.flatMap { $0 }.compactMap { $0 }.filter(\.isFinite)
        let hi = diverging ? 1 : max(finite.map(abs).max() ?? 1, 1e-30)
        var s = "<svg class=\"plot\" data-points=\"\(finite.count)\" role=\"img\" viewBox=\"0 0 \(num(width)) \(num(height))\" width=\"\(num(width))\" height=\"\(num(height))\"><title>\(escape(caption))</title>"
        for (j, c) in columnLabels.enumerated() {
            let x = left + cell * (Double(j) + 0.5)
            s += "<text class=\"axis\" transform=\"translate(\(num(x)),\(num(top - 6))) rotate(-40)\">\(escape(String(c.suffix(26))))</text>"
        }
        let showValues = cell >= 50 && rowHeight >= 20
        for (i, r) in rowLabels.enumerated() {
            let y = top + rowHeight * Double(i)
            s += "<text class=\"axis\" x=\"\(num(left - 6))\" y=\"\(num(y + rowHeight * 0.72))\" text-anchor=\"end\">\(escape(String(r.suffix(28))))</text>"
            for (j, v) in values[i].enumerated() {
                let x = left + cell * Double(j)
                let fill = v.map { $0.isFinite ? color($0 / hi, diverging: diverging) : "#ccc" } ?? "#e0e0e0"
                let tip = "\(r) · \(columnLabels[j]): \(v.map { fmt($0) } ?? "n/a")"
                s += "<rect x=\"\(num(x))\" y=\"\(num(y))\" width=\"\(num(cell - 1))\" height=\"\(num(rowHeight - 1))\" fill=\"\(fill)\"><title>\(escape(tip))</title></rect>"
                if showValues, let v {
                    let dark = abs(v / hi) > 0.6
                    s += "<text class=\"cell\" x=\"\(num(x + cell / 2))\" y=\"\(num(y + rowHeight * 0.7))\" text-anchor=\"middle\" fill=\"\(dark ? "#fff" : "#222")\">\(fmt(v, digits: 2))</text>"
                }
            }
        }
        // legend
        let lx = left + cell * Double(columnLabels.count) + 20
        for k in 0..<10 {
            let t = diverging ? 1 - 2 * Double(k) / 9 : 1 - Double(k) / 9
            s += "<rect x=\"\(num(lx))\" y=\"\(num(top + 12 * Double(k)))\" width=\"14\" height=\"12\" fill=\"\(color(t, diverging: diverging))\"/>"
        }
        s += "<text class=\"axis\" x=\"\(num(lx + 18))\" y=\"\(num(top + 10))\">\(fmt(hi, digits: 2))</text>"
        s += "<text class=\"axis\" x=\"\(num(lx + 18))\" y=\"\(num(top + 118))\">\(diverging ? "-" + fmt(hi, digits: 2) : "0")</text>"
        return s + "</svg>"
    }

    /// Lines over a shared x axis; nil values break a line.
    static func lines(x: [Double], series: [(name: String, values: [Double?])], xLabel: String, yLabel: String,
                      caption: String, yRange: (Double, Double)? = nil, logY: Bool = false, xTicks: [String]? = nil) -> String {
        let width = 720.0, height = 300.0, left = 64.0, right = 150.0, top = 16.0, bottom = 44.0
        let pts = series.flatMap { $0.values }.compactMap { $0 }.filter { $0.isFinite && (!logY || $0 > 0) }
        let tf: (Double) -> Double = logY ? { log10($0) } : { $0 }
        var (lo, hi) = yRange ?? ((pts.map(tf).min() ?? 0), (pts.map(tf).max() ?? 1))
        if hi - lo < 1e-12 { lo -= 0.5; hi += 0.5 }
        let pad = (hi - lo) * 0.05
        if yRange == nil { lo -= pad; hi += pad }
        let x0 = x.min() ?? 0, x1 = max(x.max() ?? 1, x0 + 1e-12)
        func px(_ v: Double) -> Double { left + (v - x0) / (x1 - x0) * (width - left - right) }
        func py(_ v: Double) -> Double { top + (1 - (tf(v) - lo) / (hi - lo)) * (height - top - bottom) }
        var s = "<svg class=\"plot\" data-points=\"\(pts.count)\" role=\"img\" viewBox=\"0 0 \(num(width)) \(num(height))\" width=\"\(num(width))\" height=\"\(num(height))\"><title>\(escape(caption))</title>"
        s += "<rect x=\"\(num(left))\" y=\"\(num(top))\" width=\"\(num(width - left - right))\" height=\"\(num(height - top - bottom))\" fill=\"#fbfbfb\" stroke=\"#ddd\"/>"
        for k in 0...4 {
            let v = lo + (hi - lo) * Double(k) / 4
            let y = top + (1 - Double(k) / 4) * (height - top - bottom)
            s += "<line x1=\"\(num(left))\" x2=\"\(num(width - right))\" y1=\"\(num(y))\" y2=\"\(num(y))\" stroke=\"#eee\"/>"
            s += "<text class=\"axis\" x=\"\(num(left - 6))\" y=\"\(num(y + 4))\" text-anchor=\"end\">\(fmt(logY ? pow(10, v) : v, digits: 3))</text>"
            guard xTicks == nil else { continue }
            let xv = x0 + (x1 - x0) * Double(k) / 4
            s += "<text class=\"axis\" x=\"\(num(px(xv)))\" y=\"\(num(height - bottom + 16))\" text-anchor=\"middle\">\(fmt(xv, digits: 3))</text>"
        }
        if let ticks = xTicks {
            let step = max(1, ticks.count / 10)
            for i in stride(from: 0, to: min(ticks.count, x.count), by: step) {
                s += "<text class=\"axis\" x=\"\(num(px(x[i])))\" y=\"\(num(height - bottom + 16))\" text-anchor=\"middle\">\(escape(ticks[i]))</text>"
            }
        }
        s += "<text class=\"axis\" x=\"\(num((left + width - right) / 2))\" y=\"\(num(height - 8))\" text-anchor=\"middle\">\(escape(xLabel))</text>"
        s += "<text class=\"axis\" transform=\"translate(14,\(num((top + height - bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>"
        for (k, line) in series.enumerated() {
            let color = palette[k % palette.count]
            var path = "", pen = false
            for (i, v) in line.values.enumerated() where i < x.count {
                guard let v, v.isFinite, !logY || v > 0 else { pen = false; continue }
                path += (pen ? "L" : "M") + num(px(x[i])) + "," + num(py(v))
                pen = true
            }
            s += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>"
            if line.values.compactMap({ $0 }).count <= 60 {
                for (i, v) in line.values.enumerated() where i < x.count {
                    guard let v, v.isFinite, !logY || v > 0 else { continue }
                    s += "<circle cx=\"\(num(px(x[i])))\" cy=\"\(num(py(v)))\" r=\"2.5\" fill=\"\(color)\"><title>\(escape(line.name)) @ \(fmt(x[i])): \(fmt(v))</title></circle>"
                }
            }
            let ly = top + 16 * Double(k) + 8
            s += "<rect x=\"\(num(width - right + 12))\" y=\"\(num(ly - 8))\" width=\"10\" height=\"10\" fill=\"\(color)\"/>"
            s += "<text class=\"axis\" x=\"\(num(width - right + 26))\" y=\"\(num(ly + 1))\">\(escape(String(line.name.suffix(20))))</text>"
        }
        return s + "</svg>"
    }

    /// Grouped vertical bars: one group per category (a domain), one bar per series (before, after) in
    /// the palette's colours, the value printed above each bar. The y axis starts at 0; nil values leave
    /// a gap.
    static func bars(categories: [String], series: [(name: String, values: [Double?])], yLabel: String, caption: String) -> String {
        let left = 64.0, right = 150.0, top = 16.0, bottom = 56.0, height = 300.0
        let barWidth = 36.0, gap = 18.0   // wide enough for a 4-digit value over each bar
        let longest = Double(min(24, categories.map(\.count).max() ?? 4))
        let group = max(barWidth * Double(max(1, series.count)) + gap, 7.0 * longest + gap)   // labels must not run into each other
        let width = max(420, left + right + group * Double(categories.count) + gap)
        let pts = series.flatMap { $0.values }.compactMap { $0 }.filter(\.isFinite)
        let hi = max((pts.max() ?? 1) * 1.12, 1e-12)
        func py(_ v: Double) -> Double { top + (1 - v / hi) * (height - top - bottom) }
        var s = "<svg class=\"plot\" data-points=\"\(pts.count)\" role=\"img\" viewBox=\"0 0 \(num(width)) \(num(height))\" width=\"\(num(width))\" height=\"\(num(height))\"><title>\(escape(caption))</title>"
        s += "<rect x=\"\(num(left))\" y=\"\(num(top))\" width=\"\(num(width - left - right))\" height=\"\(num(height - top - bottom))\" fill=\"#fbfbfb\" stroke=\"#ddd\"/>"
        for k in 0...4 {
            let v = hi * Double(k) / 4
            s += "<line x1=\"\(num(left))\" x2=\"\(num(width - right))\" y1=\"\(num(py(v)))\" y2=\"\(num(py(v)))\" stroke=\"#eee\"/>"
            s += "<text class=\"axis\" x=\"\(num(left - 6))\" y=\"\(num(py(v) + 4))\" text-anchor=\"end\">\(fmt(v, digits: 3))</text>"
        }
        s += "<text class=\"axis\" transform=\"translate(14,\(num((top + height - bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>"
        for (c, category) in categories.enumerated() {
            let x0 = left + gap + group * Double(c)
            for (k, line) in series.enumerated() {
                guard c < line.values.count, let v = line.values[c], v.isFinite else { continue }
                let x = x0 + barWidth * Double(k)
                s += "<rect x=\"\(num(x))\" y=\"\(num(py(v)))\" width=\"\(num(barWidth - 2))\" height=\"\(num(py(0) - py(v)))\" fill=\"\(palette[k % palette.count])\"><title>\(escape("\(category) · \(line.name): \(fmt(v, digits: 4))"))</title></rect>"
                s += "<text class=\"cell\" x=\"\(num(x + barWidth / 2 - 1))\" y=\"\(num(py(v) - 3))\" text-anchor=\"middle\">\(fmt(v, digits: 3))</text>"
            }
            let mid = x0 + barWidth * Double(series.count) / 2
            s += "<text class=\"axis\" x=\"\(num(mid))\" y=\"\(num(height - bottom + 16))\" text-anchor=\"middle\">\(escape(String(category.suffix(24))))</text>"
        }
        for (k, line) in series.enumerated() {
            let ly = top + 16 * Double(k) + 8
            s += "<rect x=\"\(num(width - right + 12))\" y=\"\(num(ly - 8))\" width=\"10\" height=\"10\" fill=\"\(palette[k % palette.count])\"/>"
            s += "<text class=\"axis\" x=\"\(num(width - right + 26))\" y=\"\(num(ly + 1))\">\(escape(String(line.name.suffix(20))))</text>"
        }
        return s + "</svg>"
    }

    /// One coloured cell per item with a label under it (which source each output layer came from).
    static func strip(labels: [String], categories: [Int], categoryNames: [String], caption: String) -> String {
        let cell = labels.count > 40 ? 16.0 : 28.0
        let width = max(400, 20 + cell * Double(labels.count) + 20), height = 70.0 + 16 * Double(categoryNames.count)
        var s = "<svg class=\"plot\" data-points=\"\(labels.count)\" role=\"img\" viewBox=\"0 0 \(num(width)) \(num(height))\" width=\"\(num(width))\" height=\"\(num(height))\"><title>\(escape(caption))</title>"
        for (i, l) in labels.enumerated() {
            let x = 20 + cell * Double(i), c = categories[i]
            s += "<rect x=\"\(num(x))\" y=\"10\" width=\"\(num(cell - 2))\" height=\"26\" fill=\"\(c >= 0 ? palette[c % palette.count] : "#ddd")\"><title>\(escape(l))</title></rect>"
            if i % max(1, labels.count / 20) == 0 {
                s += "<text class=\"axis\" x=\"\(num(x + cell / 2))\" y=\"50\" text-anchor=\"middle\">\(i)</text>"
            }
        }
        for (k, name) in categoryNames.enumerated() {
            let y = 66 + 16 * Double(k)
            s += "<rect x=\"20\" y=\"\(num(y - 9))\" width=\"10\" height=\"10\" fill=\"\(palette[k % palette.count])\"/>"
            s += "<text class=\"axis\" x=\"36\" y=\"\(num(y))\">\(escape(name))</text>"
        }
        return s + "</svg>"
    }
}

// Hand-written matchers for the split regexes of byte-level BPE tokenizers. Foundation's regex is
// slow and differs from Oniguruma/fancy-regex on \s and lookahead; these walk UTF-8 bytes and give
// the exact spans `find_iter` gives. Every alternative of each pattern is tried in order at each
// position, as a backtracking engine does; each pattern matches every character, so the spans
// tile the text.

/// A split pattern: calls `body(start, end)` for each match, in order, tiling `text`.
protocol SpanPattern: Sendable {
    func forEachSpan(_ text: UnsafeBufferPointer<UInt8>, _ body: (Int, Int) -> Void)
}

/// GPT-2 (also HF `ByteLevel(use_regex=true)` and llama.cpp's gpt-2/smollm pre-tokenizers):
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
struct GPT2Pattern: SpanPattern {
    static let regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    func forEachSpan(_ p: UnsafeBufferPointer<UInt8>, _ body: (Int, Int) -> Void) {
        let n = p.count
        var i = 0
        while i < n {
            let e = matchAt(p, i, n)
            body(i, e)
            i = e
        }
    }

    @inline(__always)
    private func cls(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (CharClass, Int) {
        let b = p[i]
        if b < 0x80 { return (asciiClass[Int(b)], 1) }
        let (v, l) = decodeScalar(p, i)
        return (Unicode_.classes(v), l)
    }

    private func matchAt(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ n: Int) -> Int {
        let c = p[i]
        // 's|'t|'re|'ve|'m|'ll|'d
        if c == 0x27, i + 1 < n {
            let d = p[i + 1]
            if d == 0x73 || d == 0x74 || d == 0x6D || d == 0x64 { return i + 2 }
            if i + 2 < n {
                let e = p[i + 2]
                if (d == 0x72 && e == 0x65) || (d == 0x76 && e == 0x65) || (d == 0x6C && e == 0x6C) { return i + 3 }
            }
        }
        // ` ?X+` for X in \p{L}, \p{N}, [^\s\p{L}\p{N}]
        let j = (c == 0x20 && i + 1 < n) ? i + 1 : i
        let (cj, lj) = cls(p, j)
        if !(c == 0x20 && j == i) {
            if cj.contains(.letter) { return run(p, j + lj, n) { $0.contains(.letter) } }
            if cj.contains(.number) { return run(p, j + lj, n) { $0.contains(.number) } }
            if !cj.contains(.whitespace) { return run(p, j + lj, n) { !$0.contains(.whitespace) && !$0.contains(.letter) && !$0.contains(.number) } }
        }
        // \s+(?!\S) | \s+
        return whitespaceRun(p, i, n)
    }

    @inline(__always)
    func run(_ p: UnsafeBufferPointer<UInt8>, _ start: Int, _ n: Int, _ ok: (CharClass) -> Bool) -> Int {
        var k = start
        while k < n {
            let (c, l) = cls(p, k)
            if !ok(c) { break }
            k += l
        }
        return k
    }

    /// `\s+(?!\S)|\s+` at `i`, where p[i] is whitespace: the whole run if it ends the text, else
    /// the run less its last character (which then leads the next word), else one character.
    func whitespaceRun(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ n: Int) -> Int {
        var k = i
        var lastStart = i
        while k < n {
            let (c, l) = cls(p, k)
            if !c.contains(.whitespace) { break }
            lastStart = k
            k += l
        }
        if k == i { return i + utf8Length(lead: p[i]) } // not whitespace: cannot happen, stay total
        if k == n { return n }
        if lastStart > i { return lastStart }
        return k
    }
}

/// Llama 3 (`llama-bpe`), as transformers' GGUF conversion and Meta's tokenizer.json write it:
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
struct Llama3Pattern: SpanPattern {
    static let regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    private let g = GPT2Pattern()

    func forEachSpan(_ p: UnsafeBufferPointer<UInt8>, _ body: (Int, Int) -> Void) {
        let n = p.count
        var i = 0
        while i < n {
            let e = matchAt(p, i, n)
            body(i, e)
            i = e
        }
    }

    @inline(__always)
    private func cls(_ p: UnsafeBufferPointer<UInt8>, _ i: Int) -> (CharClass, Int) {
        let b = p[i]
        if b < 0x80 { return (asciiClass[Int(b)], 1) }
        let (v, l) = decodeScalar(p, i)
        return (Unicode_.classes(v), l)
    }

    private func matchAt(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ n: Int) -> Int {
        let c = p[i]
        if c == 0x27, i + 1 < n {
            let d = p[i + 1] | 0x20
            if d == 0x73 || d == 0x74 || d == 0x6D || d == 0x64 { return i + 2 }
            if i + 2 < n {
                let e = p[i + 2] | 0x20
                if (d == 0x72 && e == 0x65) || (d == 0x76 && e == 0x65) || (d == 0x6C && e == 0x6C) { return i + 3 }
            }
        }
        let (ci, li) = cls(p, i)
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if ci.contains(.letter) { return g.run(p, i + li, n) { $0.contains(.letter) } }
        if c != 0x0D, c != 0x0A, !ci.contains(.number), i + li < n {
            let (cn, ln) = cls(p, i + li)
            if cn.contains(.letter) { return g.run(p, i + li + ln, n) { $0.contains(.letter) } }
        }
        // \p{N}{1,3}
        if ci.contains(.number) {
            var k = i + li, count = 1
            while count < 3, k < n {
                let (cn, ln) = cls(p, k)
                if !cn.contains(.number) { break }
                k += ln; count += 1
            }
            return k
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let j = (c == 0x20 && i + 1 < n) ? i + 1 : i
        if !(c == 0x20 && j == i) {
            let (cj, lj) = cls(p, j)
            if !cj.contains(.whitespace) && !cj.contains(.letter) && !cj.contains(.number) {
                var k = g.run(p, j + lj, n) { !$0.contains(.whitespace) && !$0.contains(.letter) && !$0.contains(.number) }
                while k < n, p[k] == 0x0D || p[k] == 0x0A { k += 1 }
                return k
            }
        }
        // \s*[\r\n]+ : up to and including the last \r or \n of the whitespace run
        var k = i
        var lastNewline = -1
        while k < n {
            let (cn, ln) = cls(p, k)
            if !cn.contains(.whitespace) { break }
            if p[k] == 0x0D || p[k] == 0x0A { lastNewline = k }
            k += ln
        }
        if lastNewline >= 0 { return lastNewline + 1 }
        return g.whitespaceRun(p, i, n)
    }
}

/// Classes of the 128 ASCII characters.
let asciiClass: [CharClass] = (0..<128).map { Unicode_.compute(Unicode.Scalar(UInt8($0))) }

/// The pattern for a regex string from a tokenizer.json, or nil when FuseKit has none.
func knownPattern(_ regex: String) -> SpanPattern? {
    switch regex {
    case GPT2Pattern.regex: return GPT2Pattern()
    case Llama3Pattern.regex: return Llama3Pattern()
    default: return nil
    }
}

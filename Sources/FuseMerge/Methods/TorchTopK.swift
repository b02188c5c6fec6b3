/// Which indices `torch.topk(x, k, largest=True)` and `torch.sort` / `torch.argsort` (unstable, the
/// default) put where on the CPU when values tie, so selections by rank match mergekit's bit for bit.
///
/// torch.sort on a CPU tensor runs libstdc++'s `std::sort` over (value, index) pairs with the comparator
/// "x is NaN and y is not, or x > y" (descending) or "y is NaN and x is not, or x < y" (ascending); the
/// port below (`__introsort_loop`, `__partial_sort`, `__final_insertion_sort`) only follows partitions that
/// straddle the wanted rank range, since the others cannot move an element across it.
///
/// torch's CPU kernel (aten/src/ATen/native/cpu/SortingKernel.cpp, `topk_impl_loop`) fills a vector of
/// (value, index) pairs in index order and runs libstdc++'s `std::partial_sort` when k·64 <= n, otherwise
/// `std::nth_element`, with the comparator "x is NaN and y is not, or x > y". Which of several equal values
/// lands among the first k is decided by those algorithms' swaps, so this file ports them (libstdc++
/// bits/stl_algo.h `__introselect`, `__unguarded_partition_pivot`, `__move_median_to_first`,
/// `__insertion_sort`, `__heap_select`; bits/stl_heap.h `__adjust_heap`, `__push_heap`, `__make_heap`,
/// `__pop_heap`) step for step. Checked against torch 2.15's topk on random inputs full of ties
/// (index sets equal in every case). Only the chosen set matters to callers, not its order. The pairs are
/// held as indices into the values (4 bytes an element), which compare as the pairs would. Values are
/// compared as |x| (mergekit sorts `abs()`; variances are non-negative) through their bit patterns:
/// for non-negative floats the unsigned order is the float order, and every NaN maps to one key above
/// +inf, so NaNs tie with each other and come first (descending) or last (ascending), as torch's
/// comparators put them.
/// Ascending or descending order of the keys, as a type so the partition loops specialise.
protocol TorchOrder { static func before(_ a: UInt32, _ b: UInt32) -> Bool }
enum Descending: TorchOrder { @inline(__always) static func before(_ a: UInt32, _ b: UInt32) -> Bool { a > b } }
enum Ascending: TorchOrder { @inline(__always) static func before(_ a: UInt32, _ b: UInt32) -> Bool { a < b } }

enum TorchTopK {
    /// The indices of the k largest |x|, as torch.topk picks them.
    static func largest(_ x: UnsafeMutableBufferPointer<Float>, k: Int) -> [Int32] {
        let n = x.count
        if k <= 0 { return [] }
        if k >= n { return (0..<Int32(n)).map { $0 } }
        var q = (0..<Int32(n)).map { $0 }
        let t = TorchSelect<Descending>(x)
        q.withUnsafeMutableBufferPointer { p in
            if k * 64 <= n {
                t.heapSelect(p, 0, k, n)
            } else {
                t.introselect(p, 0, k - 1, n, 2 * floorLog2(n))
            }
        }
        return Array(q[0..<k])
    }

    /// Which entries `torch.sort(|x|, descending:)` puts at sorted positions `range` (mergekit's
    /// `argsort(w, descending=True)[:k]` and breadcrumbs' `sort(w).indices[lo:hi]`), as a mask.
    static func sortedRange(_ x: UnsafeMutableBufferPointer<Float>, descending: Bool, _ range: Range<Int>) -> BitMask {
        descending ? TorchSelect<Descending>(x).sortedRange(range) : TorchSelect<Ascending>(x).sortedRange(range)
    }

    static func floorLog2(_ n: Int) -> Int { Int.bitWidth - 1 - n.leadingZeroBitCount }
}

/// One bit per element (the index array already costs 4 bytes an element; a Bool mask would add one more).
struct BitMask {
    private(set) var words: [UInt64]
    init(count: Int) { words = [UInt64](repeating: 0, count: (count + 63) / 64) }
    mutating func set(_ i: Int) { words[i >> 6] |= 1 << UInt64(i & 63) }
    @inline(__always) func contains(_ i: Int) -> Bool { words[i >> 6] & (1 << UInt64(i & 63)) != 0 }
}

/// Stands in for the keys of an empty tensor (never read).
private let noKeys = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)

/// libstdc++'s algorithms over indices, comparing the keys of the values they point at.
struct TorchSelect<Order: TorchOrder> {
    typealias Element = Int32
    typealias Buffer = UnsafeMutableBufferPointer<Element>
    let bits: UnsafePointer<UInt32>
    let count: Int

    init(_ x: UnsafeMutableBufferPointer<Float>) {
        bits = x.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt32.self) } ?? UnsafePointer(noKeys)
        count = x.count
    }

    /// |x| bits, every NaN mapped to 0x7F800001.
    @inline(__always) func key(_ i: Element) -> UInt32 { min(bits[Int(i)] & 0x7FFF_FFFF, 0x7F80_0001) }
    @inline(__always) func before(_ x: Element, _ y: Element) -> Bool { Order.before(key(x), key(y)) }

    func sortedRange(_ range: Range<Int>) -> BitMask {
        let n = count
        var mask = BitMask(count: n)
        var q = (0..<Int32(n)).map { $0 }
        let bounds = [range.lowerBound, range.upperBound].filter { $0 > 0 && $0 < n }
        q.withUnsafeMutableBufferPointer { p in
            var small: [(Int, Int)] = []
            func straddles(_ first: Int, _ last: Int) -> Bool { bounds.contains { first < $0 && $0 < last } }
            // __introsort_loop, recursing only where a boundary lies inside the range
            func loop(_ first: Int, _ last: Int, _ depth: Int) {
                var last = last, depth = depth
                while last - first > 16 {   // libstdc++ _S_threshold
                    if !straddles(first, last) { return }
                    if depth == 0 { heapSelect(p, first, last, last); sortHeap(p, first, last); return }
                    depth -= 1
                    let mid = first + (last - first) / 2
                    moveMedianToFirst(p, first, first + 1, mid, last - 1)
                    let cut = unguardedPartition(p, first + 1, last, pivot: first)
                    loop(cut, last, depth)
                    last = cut
                }
                if straddles(first, last) { small.append((first, last)) }
            }
            if n > 1 { loop(0, n, 2 * TorchTopK.floorLog2(n)) }
            // The final insertion sort moves nothing across the partitions, so sorting each small range
            // that holds a boundary gives the same positions.
            for (first, last) in small { insertionSort(p, first, last) }
            for k in range { mask.set(Int(p[k])) }
        }
        return mask
    }

    /// The slow reference: the whole of libstdc++'s `std::sort` (introsort, then the final insertion
    /// sort), returning the order of indices. `sortedRange` must agree with it on every range.
    func fullSort() -> [Int32] {
        var q = (0..<Int32(count)).map { $0 }
        q.withUnsafeMutableBufferPointer { p in
            func loop(_ first: Int, _ last: Int, _ depth: Int) {
                var last = last, depth = depth
                while last - first > 16 {
                    if depth == 0 { heapSelect(p, first, last, last); sortHeap(p, first, last); return }
                    depth -= 1
                    let mid = first + (last - first) / 2
                    moveMedianToFirst(p, first, first + 1, mid, last - 1)
                    let cut = unguardedPartition(p, first + 1, last, pivot: first)
                    loop(cut, last, depth)
                    last = cut
                }
            }
            guard count > 1 else { return }
            loop(0, count, 2 * TorchTopK.floorLog2(count))
            // __final_insertion_sort: guarded on the first 16, unguarded after (both stable here)
            insertionSort(p, 0, min(16, count))
            var i = 16
            while i < count {
                let value = p[i]
                var hole = i, next = i - 1
                while before(value, p[next]) { p[hole] = p[next]; hole = next; next -= 1 }
                p[hole] = value
                i += 1
            }
        }
        return q
    }

    func introselect(_ q: Buffer, _ first: Int, _ nth: Int, _ last: Int, _ depth: Int) {
        var first = first, last = last, depth = depth
        while last - first > 3 {
            if depth == 0 {
                heapSelect(q, first, nth + 1, last)
                q.swapAt(first, nth)
                return
            }
            depth -= 1
            let mid = first + (last - first) / 2
            moveMedianToFirst(q, first, first + 1, mid, last - 1)
            let cut = unguardedPartition(q, first + 1, last, pivot: first)
            if cut <= nth { first = cut } else { last = cut }
        }
        insertionSort(q, first, last)
    }

    func moveMedianToFirst(_ q: Buffer, _ result: Int, _ a: Int, _ b: Int, _ c: Int) {
        if before(q[a], q[b]) {
            if before(q[b], q[c]) { q.swapAt(result, b) }
            else if before(q[a], q[c]) { q.swapAt(result, c) }
            else { q.swapAt(result, a) }
        } else if before(q[a], q[c]) { q.swapAt(result, a) }
        else if before(q[b], q[c]) { q.swapAt(result, c) }
        else { q.swapAt(result, b) }
    }

    /// The pivot stays at `pivot` (outside [first, last)) throughout, so its key is read once.
    func unguardedPartition(_ q: Buffer, _ first: Int, _ last: Int, pivot: Int) -> Int {
        guard let base = q.baseAddress else { return first }
        let p = key(base[pivot])
        var first = first, last = last
        while true {
            while Order.before(key(base[first]), p) { first += 1 }
            last -= 1
            while Order.before(p, key(base[last])) { last -= 1 }
            if !(first < last) { return first }
            let t = base[first]; base[first] = base[last]; base[last] = t
            first += 1
        }
    }

    func insertionSort(_ q: Buffer, _ first: Int, _ last: Int) {
        guard first != last else { return }
        var i = first + 1
        while i < last {
            let value = q[i]
            if before(value, q[first]) {
                var j = i
                while j > first { q[j] = q[j - 1]; j -= 1 }
                q[first] = value
            } else {
                var hole = i, next = i - 1
                while before(value, q[next]) { q[hole] = q[next]; hole = next; next -= 1 }
                q[hole] = value
            }
            i += 1
        }
    }

    func adjustHeap(_ q: Buffer, _ first: Int, _ holeIndex: Int, _ length: Int, _ value: Element) {
        let top = holeIndex
        var hole = holeIndex, child = holeIndex
        while child < (length - 1) / 2 {
            child = 2 * (child + 1)
            if before(q[first + child], q[first + child - 1]) { child -= 1 }
            q[first + hole] = q[first + child]
            hole = child
        }
        if length & 1 == 0 && child == (length - 2) / 2 {
            child = 2 * (child + 1)
            q[first + hole] = q[first + child - 1]
            hole = child - 1
        }
        var parent = (hole - 1) / 2
        while hole > top && before(q[first + parent], value) {
            q[first + hole] = q[first + parent]
            hole = parent
            parent = (hole - 1) / 2
        }
        q[first + hole] = value
    }

    func makeHeap(_ q: Buffer, _ first: Int, _ last: Int) {
        let length = last - first
        guard length >= 2 else { return }
        var parent = (length - 2) / 2
        while true {
            adjustHeap(q, first, parent, length, q[first + parent])
            if parent == 0 { return }
            parent -= 1
        }
    }

    func sortHeap(_ q: Buffer, _ first: Int, _ last: Int) {
        var last = last
        while last - first > 1 {   // __pop_heap(first, last - 1, last - 1)
            last -= 1
            let value = q[last]
            q[last] = q[first]
            adjustHeap(q, first, 0, last - first, value)
        }
    }

    func heapSelect(_ q: Buffer, _ first: Int, _ middle: Int, _ last: Int) {
        makeHeap(q, first, middle)
        var i = middle
        while i < last {
            if before(q[i], q[first]) {   // __pop_heap(first, middle, i)
                let value = q[i]
                q[i] = q[first]
                adjustHeap(q, first, 0, middle - first, value)
            }
            i += 1
        }
    }
}

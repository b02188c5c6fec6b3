/// Which indices `torch.topk(x, k, largest=True)` returns on the CPU when values tie at the k-th largest.
///
/// torch's CPU kernel (aten/src/ATen/native/cpu/SortingKernel.cpp, `topk_impl_loop`) fills a vector of
/// (value, index) pairs in index order and runs libstdc++'s `std::partial_sort` when k·64 <= n, otherwise
/// `std::nth_element`, with the comparator "x is NaN and y is not, or x > y". Which of several equal values
/// lands among the first k is decided by those algorithms' swaps, so this file ports them (libstdc++
/// bits/stl_algo.h `__introselect`, `__unguarded_partition_pivot`, `__move_median_to_first`,
/// `__insertion_sort`, `__heap_select`; bits/stl_heap.h `__adjust_heap`, `__push_heap`, `__make_heap`,
/// `__pop_heap`) step for step. Checked against torch 2.15's topk on random inputs full of ties
/// (index sets equal in every case). Only the chosen set matters to callers, not its order. The pairs are
/// held as indices into the values (4 bytes an element), which compare as the pairs would.
struct TorchTopK {
    typealias Element = Int32
    let v: UnsafeMutableBufferPointer<Float>

    @inline(__always) func before(_ x: Element, _ y: Element) -> Bool {
        let a = v[Int(x)], b = v[Int(y)]
        return (a.isNaN && !b.isNaN) || a > b
    }

    /// The indices of the k largest values of `x`, as torch.topk picks them.
    static func largest(_ x: UnsafeMutableBufferPointer<Float>, k: Int) -> [Int32] {
        let n = x.count
        if k <= 0 { return [] }
        if k >= n { return (0..<Int32(n)).map { $0 } }
        var q = (0..<Int32(n)).map { $0 }
        let t = TorchTopK(v: x)
        q.withUnsafeMutableBufferPointer { p in
            if k * 64 <= n {
                t.heapSelect(p, 0, k, n)
            } else {
                var lg = 0
                while (1 << (lg + 1)) <= n { lg += 1 }
                t.introselect(p, 0, k - 1, n, 2 * lg)
            }
        }
        return Array(q[0..<k])
    }

    typealias Buffer = UnsafeMutableBufferPointer<Element>

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

    func unguardedPartition(_ q: Buffer, _ first: Int, _ last: Int, pivot: Int) -> Int {
        var first = first, last = last
        while true {
            while before(q[first], q[pivot]) { first += 1 }
            last -= 1
            while before(q[pivot], q[last]) { last -= 1 }
            if !(first < last) { return first }
            q.swapAt(first, last)
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

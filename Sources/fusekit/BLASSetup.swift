import CFuseKernels
import Foundation
import FuseTensor

/// OpenBLAS 0.3.21 (Debian) runs AMD Zen 4 on its AVX2 "Haswell" kernels although the CPU has
/// AVX-512; forcing the Skylake-X kernels measured 1.7x faster on the 512-token prefill here
/// (docs/benchmarks-runtime.md). The core is chosen when the library loads, before `main`, so the
/// process re-executes itself once with OPENBLAS_CORETYPE set. Set OPENBLAS_CORETYPE yourself to
/// choose another core (or keep the detected one); nothing happens when it is set.
enum BLASSetup {
    static func preferFastKernels() {
        let env = ProcessInfo.processInfo.environment
        let hasAVX512 = fk_cpu_features() & 2 != 0
        guard env["OPENBLAS_CORETYPE"] == nil, hasAVX512, ["Haswell", "Zen"].contains(BLAS.coreName) else { return }
        setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)   // returns only on failure: carry on as we are
    }
}

// Umbrella header of the CFuseKernels module.
#include "fuse_kernels.h"
#include "fuse_nn.h"
#include "fuse_pool.h"
#include "fuse_merge.h"
#include "fuse_report.h"

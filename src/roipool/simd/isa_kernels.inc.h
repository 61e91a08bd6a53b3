/* The instantiation list of one ISA: every kernel body for every element
 * type, for the RP_ISA, RP_ATTR, RP_VECTORS, RP_NARROWER that kernels.h has
 * defined (and undefines after). RP_BACKWARD: the ISA builds its own
 * backward helpers. Makes, for <isa>:
 *   roipool_roi_max_{f32,f64,f16,bf16}_<isa>      roi_max.inc.h
 *   roipool_bin_max_{f32,f64,f16,bf16}_<isa>
 *   roipool_{widen,scatter,narrow}_{f16,bf16}_<isa>  backward.inc.h
 *   roipool_align_{fwd,bwd}_{f32,f64,f16,bf16}_<isa>  roi_align.inc.h */
#if RP_VECTORS
ROIPOOL_CHECK_OPS(RP_ISA)
ROIPOOL_CHECK_ALIGN_OPS(RP_ISA)
#if RP_BACKWARD
ROIPOOL_CHECK_BACKWARD_OPS(RP_ISA)
#endif
#endif

#define RP_TYPE f32
#include "roi_max.inc.h"
#include "roi_align.inc.h"
#undef RP_TYPE
#define RP_TYPE f64
#include "roi_max.inc.h"
#include "roi_align.inc.h"
#undef RP_TYPE
#define RP_TYPE f16
#include "roi_max.inc.h"
#include "roi_align.inc.h"
#if RP_BACKWARD
#include "backward.inc.h"
#endif
#undef RP_TYPE
#define RP_TYPE bf16
#include "roi_max.inc.h"
#include "roi_align.inc.h"
#if RP_BACKWARD
#include "backward.inc.h"
#endif
#undef RP_TYPE

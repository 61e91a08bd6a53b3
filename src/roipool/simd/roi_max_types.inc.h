/* The ROI max kernel (roi_max.inc.h) for every element type, for the ISA
 * kernels.h has defined (RP_ISA and the rest). */
#define RP_TYPE f32
#include "roi_max.inc.h"
#undef RP_TYPE
#define RP_TYPE f64
#include "roi_max.inc.h"
#undef RP_TYPE
#define RP_TYPE f16
#include "roi_max.inc.h"
#undef RP_TYPE
#define RP_TYPE bf16
#include "roi_max.inc.h"
#undef RP_TYPE

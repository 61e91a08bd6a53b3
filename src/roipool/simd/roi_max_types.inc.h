/* The kernels of every element type: the ROI max kernel (roi_max.inc.h) and
 * RoIAlign's (roi_align.inc.h), for the ISA kernels.h has defined
 * (ROIPOOL_ISA and the rest). */
#define ROIPOOL_TYPE f32
#include "roi_max.inc.h"
#include "roi_align.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE f64
#include "roi_max.inc.h"
#include "roi_align.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE f16
#include "roi_max.inc.h"
#include "roi_align.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE bf16
#include "roi_max.inc.h"
#include "roi_align.inc.h"
#undef ROIPOOL_TYPE

/* roi_align.inc.h for every element type, for the ISA roi_align.h has
 * defined (ROIPOOL_ISA and the rest). */
#define ROIPOOL_TYPE f32
#include "roi_align.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE f64
#include "roi_align.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE f16
#include "roi_align.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE bf16
#include "roi_align.inc.h"
#undef ROIPOOL_TYPE

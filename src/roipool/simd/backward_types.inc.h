/* backward.inc.h for both half types, for the ISA backward.h has defined
 * (ROIPOOL_ISA, ROIPOOL_ISA_ATTR, ROIPOOL_VECTORS, undefined here after). */
#define ROIPOOL_TYPE f16
#include "backward.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE bf16
#include "backward.inc.h"
#undef ROIPOOL_TYPE
#undef ROIPOOL_VECTORS
#undef ROIPOOL_ISA_ATTR
#undef ROIPOOL_ISA

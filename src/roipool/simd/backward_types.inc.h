/* backward.inc.h for both half types, for the ISA backward.h has defined. */
#define ROIPOOL_TYPE f16
#include "backward.inc.h"
#undef ROIPOOL_TYPE
#define ROIPOOL_TYPE bf16
#include "backward.inc.h"
#undef ROIPOOL_TYPE

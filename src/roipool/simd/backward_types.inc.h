/* backward.inc.h for both half types, for the ISA backward.h has defined
 * (RP_ISA, RP_ATTR, RP_VECTORS, undefined here after). */
#define RP_TYPE f16
#include "backward.inc.h"
#undef RP_TYPE
#define RP_TYPE bf16
#include "backward.inc.h"
#undef RP_TYPE
#undef RP_VECTORS
#undef RP_ATTR
#undef RP_ISA

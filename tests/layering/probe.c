/* Compiled once per layering probe (tests/CMakeLists.txt) with the include
 * path of one layer: it builds when SW_PROBE_HEADER is on that path. */
#include SW_PROBE_HEADER

int sw_layering_probe(void);
int sw_layering_probe(void)
{
    return 0;
}

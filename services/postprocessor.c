/* stagewise-postprocessor: serves the postprocessor of a Ludwig export. */
#include "service_main.h"

int main(int argc, char **argv)
{
    return sw_service_main(SW_STAGE_POSTPROCESSOR, argc, argv);
}

/* stagewise-preprocessor: serves the preprocessor of a Ludwig export. */
#include "service_main.h"

int main(int argc, char **argv)
{
    return sw_service_main(SW_STAGE_PREPROCESSOR, argc, argv);
}

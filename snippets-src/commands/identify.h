/* identify: waits up to timeout_ms for a USB device to be plugged in and
 * prints the lines that would select it. */
#pragma once

int identify_run(int timeout_ms);

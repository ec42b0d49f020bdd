// The `junction` command-line commands. Each takes the arguments after its
// own name and returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace junction::app {

using Args = std::vector<std::string>;

int cmdRun(const Args& args);
int cmdValidate(const Args& args);
int cmdVersion(const Args& args);
int cmdHl7Parse(const Args& args);
int cmdHl7Send(const Args& args);
int cmdTest(const Args& args);
int cmdSchema(const Args& args);
int cmdMessages(const Args& args);
int cmdChannel(const Args& args);
int cmdUser(const Args& args);

// True when args contain -h or --help.
bool wantsHelp(const Args& args);

}  // namespace junction::app

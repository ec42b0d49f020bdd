// junction version: the version and the libraries it runs on.
#include <Poco/Environment.h>
#include <lua.hpp>
#include <sqlite3.h>
#include <xercesc/util/XercesVersion.hpp>
#include <yaml-cpp/yaml.h>

#include <iostream>

#include "engine/dicom/dicom_toolkit.h"
#include "engine/app/commands.h"

namespace junction::app {

namespace {

std::string luaVersion() {
    lua_State* L = luaL_newstate();
    if (!L) return "unavailable";
    luaL_openlibs(L);
    lua_getglobal(L, "_VERSION");
    std::string v = lua_tostring(L, -1) ? lua_tostring(L, -1) : "?";
    lua_close(L);
    return v;
}

std::string pocoVersion() {
    unsigned v = Poco::Environment::libraryVersion();
    return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 0xff) + "." + std::to_string((v >> 8) & 0xff);
}

}  // namespace

int cmdVersion(const Args& args) {
    if (wantsHelp(args)) {
        std::cout << "usage: junction version\n\nPrints Junction's version and the versions of the libraries it uses.\n";
        return 0;
    }
    // yaml-cpp has no version call; parsing a document proves the library is linked.
    YAML::Node probe = YAML::Load("yaml: ok");
    std::cout << "junction " << JUNCTION_VERSION << "\n"
              << "  POCO " << pocoVersion() << "\n"
              << "  Xerces-C " << gXercesFullVersionStr << "\n"
              << "  " << dicom::toolkitVersion() << "\n"
              << "  yaml-cpp " << (probe["yaml"].as<std::string>() == "ok" ? JUNCTION_YAML_CPP_VERSION : "broken")
              << "\n"
              << "  " << luaVersion() << "\n"
              << "  SQLite " << sqlite3_libversion() << "\n";
    return 0;
}

}  // namespace junction::app

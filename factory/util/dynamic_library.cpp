#include "factory/util/dynamic_library.hpp"

#include <dlfcn.h>

namespace factory {

DynamicLibrary::DynamicLibrary(const char* soname, const char* what)
    : soname_(soname), what_(what), handle_(::dlopen(soname, RTLD_NOW | RTLD_LOCAL)) {
    if (!handle_) {
        const char* why = ::dlerror();
        error_ = std::string("cannot load ") + what + ": " + (why ? why : "dlopen failed");
    }
}

void* DynamicLibrary::symbol(const char* name) {
    void* p = ::dlsym(handle_, name);
    if (!p) error_ = std::string("cannot load ") + what_ + ": " + soname_ + " has no " + name;
    return p;
}

} // namespace factory

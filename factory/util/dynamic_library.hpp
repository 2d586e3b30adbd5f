#pragma once
// A shared library opened at run time, for the loaders that define a library's functions
// and open it on first use (curl_loader.cpp, archive_loader.cpp). It is opened RTLD_NOW |
// RTLD_LOCAL and never closed: the functions bound from it stay valid for the process.

#include <string>

namespace factory {

class DynamicLibrary {
  public:
    // Opens `soname`; `what` names the library in errors ("cannot load libcurl: …").
    DynamicLibrary(const char* soname, const char* what);

    // Binds `fn` to the library's function `name`, unless opening it or an earlier bind
    // failed. Errors: "cannot load WHAT: SONAME has no NAME".
    template <class F> void bind(F& fn, const char* name) {
        if (error_.empty()) fn = reinterpret_cast<F>(symbol(name));
    }

    bool ok() const noexcept { return error_.empty(); }
    // What dlopen or dlsym said; empty when every bind succeeded.
    const std::string& error() const noexcept { return error_; }

  private:
    void* symbol(const char* name);

    const char* soname_;
    const char* what_;
    void* handle_ = nullptr;
    std::string error_;
};

} // namespace factory

#include "factory/cli/cli.hpp"

int main(int argc, char** argv) {
    return factory::cli::run(argc, argv);
}

#include "factory/recipe/stage_order.hpp"

#include <unordered_map>

namespace factory::recipe::detail {

namespace {

struct Use {
    std::size_t stage;
    Location where; // the reference, for a cycle's message
};

std::vector<std::vector<Use>> uses_of(const std::vector<Stage>& stages) {
    std::unordered_map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < stages.size(); ++i)
        index.emplace(stages[i].name, i);
    std::vector<std::vector<Use>> uses(stages.size());
    for (std::size_t i = 0; i < stages.size(); ++i) {
        const auto& stage = stages[i];
        if (stage.base.kind == Base::Kind::stage)
            uses[i].push_back(Use{index.at(stage.base.stage), stage.base.where});
        for (const auto& step : stage.steps)
            for (const auto& item : step.copy)
                if (!item.from_stage.empty())
                    uses[i].push_back(Use{index.at(item.from_stage), item.where});
    }
    return uses;
}

} // namespace

std::vector<Stage> order_stages(std::vector<Stage> stages, const Reader& reader) {
    auto uses = uses_of(stages);
    enum class Mark { unvisited, open, done };
    std::vector<Mark> mark(stages.size(), Mark::unvisited);
    std::vector<std::size_t> order;
    struct Frame {
        std::size_t stage;
        std::size_t next_use = 0;
    };
    for (std::size_t root = 0; root < stages.size(); ++root) {
        if (mark[root] != Mark::unvisited) continue;
        std::vector<Frame> path{{root}};
        mark[root] = Mark::open;
        while (!path.empty()) {
            auto& frame = path.back();
            if (frame.next_use == uses[frame.stage].size()) {
                mark[frame.stage] = Mark::done;
                order.push_back(frame.stage);
                path.pop_back();
                continue;
            }
            const auto& use = uses[frame.stage][frame.next_use++];
            if (mark[use.stage] == Mark::unvisited) {
                mark[use.stage] = Mark::open;
                path.push_back(Frame{use.stage});
            } else if (mark[use.stage] == Mark::open) {
                std::string cycle;
                bool in_cycle = false;
                for (const auto& f : path) {
                    in_cycle = in_cycle || f.stage == use.stage;
                    if (in_cycle) cycle += stages[f.stage].name + " -> ";
                }
                reader.fail(use.where, "stages form a cycle: " + cycle + stages[use.stage].name);
            }
        }
    }
    std::vector<Stage> out;
    out.reserve(stages.size());
    for (auto i : order)
        out.push_back(std::move(stages[i]));
    return out;
}

} // namespace factory::recipe::detail

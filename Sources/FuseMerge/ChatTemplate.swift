import Foundation
import FuseIO

/// `chat_template:` (mergekit `merge.py` `_set_chat_template`): a literal Jinja template, `auto` (the
/// template most of the inputs carry), or a named one. Written as chat_template.jinja (what transformers
/// 5 saves) and into tokenizer_config.json when the output has one.
enum ChatTemplate {
    /// ChatML, written out here (the format: `<|im_start|>role\ncontent<|im_end|>\n` per message).
    static let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

    /// The template text for `setting`, or nil when `auto` finds no input template.
    static func resolve(_ setting: String, inputs: [String?]) throws -> String? {
        switch setting {
        case "auto":
            var counts: [String: Int] = [:], order: [String] = []
            for folder in inputs.compactMap({ $0 }) {
                guard let t = template(in: folder) else { continue }
                if counts[t] == nil { order.append(t) }
                counts[t, default: 0] += 1
            }
            return order.max { counts[$0, default: 0] < counts[$1, default: 0] }
        case "chatml": return chatml
        case "alpaca", "llama3", "mistral", "exaone":
            throw MergeError.unsupported("chat_template: '\(setting)' is not bundled with FuseKit yet; paste the Jinja template itself or use auto or chatml")
        default: return setting
        }
    }

    static func template(in folder: String) -> String? {
        if let t = try? String(contentsOfFile: folder + "/chat_template.jinja", encoding: .utf8) { return t }
        return (try? readJSONFile(folder + "/tokenizer_config.json"))?["chat_template"]?.string
    }

    static func write(_ template: String, to directory: String) throws {
        try writeFileAtomically(path: directory + "/chat_template.jinja", contents: template)
        let configPath = directory + "/tokenizer_config.json"
        if FileManager.default.fileExists(atPath: configPath), case var .object(pairs) = try readJSONFile(configPath) {
            pairs.removeAll { $0.0 == "chat_template" }
            pairs.append(("chat_template", .string(template)))
            try writeFileAtomically(path: configPath, contents: JSON.object(pairs).serialized(indent: 2) + "\n")
        }
    }
}
